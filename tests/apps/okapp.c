/* A test app that boots: proves the dlopen path of `app = /path/lib.so:symbol`. */
#include "../../worker/c2a_app.h"

static int ok_init(void **state)
{
    static int dummy;
    *state = &dummy;
    return 0;
}

const struct c2a_app ok_app = {C2A_APP_ABI_VERSION, "okapp", ok_init, 0};
const struct c2a_app wrong_abi_app = {999, "wrongabi", 0, 0};
