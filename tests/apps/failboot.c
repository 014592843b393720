/* A test app whose init fails: every worker that loads it fails to boot. */
#include "../../worker/c2a_app.h"

static int fail_init(void **state)
{
    (void)state;
    return -1;
}

const struct c2a_app failboot_app = {C2A_APP_ABI_VERSION, "failboot", fail_init, 0};
