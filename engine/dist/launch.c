/* launch.c - whether an MPI launcher started this process, told by the
 * variables mpirun (Open MPI, MPICH, Intel MPI) and srun (PMI-2, PMIx) set
 * for every process they start. Shared by the MPI and the no-MPI build, so
 * that a build without MPI refuses to run as N unrelated copies. */
#include "dist.h"

#include <stdlib.h>

bool dt_dist_launched(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK",
                                       "MPI_LOCALNRANKS", NULL};
    for (int i = 0; vars[i]; i++)
        if (getenv(vars[i]))
            return true;
    return false;
}
