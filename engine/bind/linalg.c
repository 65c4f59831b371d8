/* linalg.c - placeholder registration; filled in by the linalg work. */
#include "bind.h"

void lt_open_linalg(lua_State *L, int mod_idx) { lt_register(L, mod_idx, NULL, NULL); }
