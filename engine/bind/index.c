/* index.c - placeholder registration; filled in by the index work. */
#include "bind.h"

void lt_open_index(lua_State *L, int mod_idx) { lt_register(L, mod_idx, NULL, NULL); }
