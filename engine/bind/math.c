/* math.c - placeholder registration; filled in by the math work. */
#include "bind.h"

void lt_open_math(lua_State *L, int mod_idx) { lt_register(L, mod_idx, NULL, NULL); }
