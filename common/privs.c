#include "privs.h"
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int privs_drop(const struct config *cfg, char *err, size_t errlen)
{
    if (!cfg->user[0] || geteuid() != 0)
        return 0;
    struct passwd *pw = getpwnam(cfg->user);
    if (!pw) {
        snprintf(err, errlen, "user %s: no such user", cfg->user);
        return -1;
    }
    gid_t gid = pw->pw_gid;
    if (cfg->group[0]) {
        struct group *gr = getgrnam(cfg->group);
        if (!gr) {
            snprintf(err, errlen, "group %s: no such group", cfg->group);
            return -1;
        }
        gid = gr->gr_gid;
    }
    if (initgroups(pw->pw_name, gid) < 0 || setgid(gid) < 0 || setuid(pw->pw_uid) < 0) {
        snprintf(err, errlen, "cannot become %s: %s", cfg->user, strerror(errno));
        return -1;
    }
    return 0;
}
