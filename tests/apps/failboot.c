/* A test app whose init fails: every worker that loads it fails to boot. */
#include "../../worker/c2a_app.h"

static int fail_init(void **state)
{
    (void)state;
    return -1;
}

const struct c2a_app failboot_app = {C2A_APP_ABI_VERSION, "failboot", fail_init, 0};

/* An app built against another version of c2a_app.h: refused by -t and at boot. */
const struct c2a_app oldabi_app = {C2A_APP_ABI_VERSION + 1, "oldabi", 0, 0};
