/* data.c - placeholder registration; filled in by the data pipeline work. */
#include "bind.h"

void lt_open_data(lua_State *L, int mod_idx) { lt_register(L, mod_idx, NULL, NULL); }
