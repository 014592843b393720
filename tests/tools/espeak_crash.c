/*
 * espeak_crash: does espeak-ng survive these inputs? A tool for finding the
 * inputs that crash libespeak-ng (see worker/normalize.h), not a unit test.
 *
 *   espeak_crash [-v voice] [-l lang] [-s] [-n] [-q] < inputs
 *
 * Inputs are read from stdin, separated by NUL bytes. espeak-ng is initialised
 * once the way synth_espeak.c does it (synchronous output, a callback that
 * discards the audio, URIs refused, the voice set); each input is then
 * synthesized in a child forked from that state. One
 * line per input on stdout: its number, its length in bytes, "ok", "signal N
 * (name)", "exit N" or "timeout", and the start of the input. -s synthesizes as
 * SSML, -n passes the input through normalize_text() first (for a voice of
 * language lang, -l; default none), -q prints only the
 * inputs that did not come back ok. The exit status is 1 when any input failed.
 *
 * Build (make tools) and run, e.g.:
 *   printf 'a.%.0s' $(seq 85) | build/tests/espeak_crash -v en-us
 */
#include "../../worker/normalize.h"

#include <espeak-ng/espeak_ng.h>
#include <espeak-ng/speak_lib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int discard(short *wav, int n, espeak_EVENT *events)
{
    (void)wav;
    (void)n;
    (void)events;
    return 0;
}

static int refuse_uri(int type, const char *uri, const char *base)
{
    (void)type;
    (void)uri;
    (void)base;
    return 1;
}

/* Once, in the parent: every child starts from this state, as a fresh engine
 * process would, without paying for loading the voice each time. */
static void init_espeak(const char *voice)
{
    espeak_ng_InitializePath(NULL);
    if (espeak_ng_Initialize(NULL) != ENS_OK ||
        espeak_ng_InitializeOutput(ENOUTPUT_MODE_SYNCHRONOUS, 0, NULL) != ENS_OK) {
        fprintf(stderr, "espeak_crash: cannot initialise espeak-ng\n");
        exit(2);
    }
    espeak_SetSynthCallback(discard);
    espeak_SetUriCallback(refuse_uri);
    if (espeak_ng_SetVoiceByName(voice) != ENS_OK) {
        fprintf(stderr, "espeak_crash: no voice %s\n", voice);
        exit(2);
    }
}

/* The child: never returns. Exit 2 for an espeak-ng error. */
static void synthesize(const char *text, size_t len, int ssml)
{
    alarm(30);
    unsigned flags = espeakCHARS_UTF8 | espeakENDPAUSE | (ssml ? espeakSSML : 0);
    espeak_ng_STATUS st =
        espeak_ng_Synthesize(text, len + 1, 0, POS_CHARACTER, 0, flags, NULL, NULL);
    _exit(st == ENS_OK ? 0 : 2);
}

static int run(const char *text, size_t len, int ssml, char *res, size_t reslen)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0)
        synthesize(text, len, ssml);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        ;
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
        snprintf(res, reslen, "timeout");
    } else if (WIFSIGNALED(status)) {
        snprintf(res, reslen, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    } else if (WEXITSTATUS(status) != 0) {
        snprintf(res, reslen, "exit %d", WEXITSTATUS(status));
    } else {
        snprintf(res, reslen, "ok");
        return 0;
    }
    return -1;
}

int main(int argc, char **argv)
{
    const char *voice = "en-us", *lang = NULL;
    int ssml = 0, norm = 0, quiet = 0, opt;
    while ((opt = getopt(argc, argv, "v:l:snq")) != -1) {
        switch (opt) {
        case 'v':
            voice = optarg;
            break;
        case 'l':
            lang = optarg;
            break;
        case 's':
            ssml = 1;
            break;
        case 'n':
            norm = 1;
            break;
        case 'q':
            quiet = 1;
            break;
        default:
            fprintf(stderr, "usage: espeak_crash [-v voice] [-l lang] [-s] [-n] [-q] < inputs\n");
            return 2;
        }
    }
    init_espeak(voice);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    int c, n = 0, failed = 0;
    do {
        c = getchar();
        if (c != EOF && c != '\0') {
            if (len + 1 >= cap)
                buf = realloc(buf, cap *= 2);
            buf[len++] = (char)c;
            continue;
        }
        if (len == 0 && c == EOF)
            break;
        buf[len] = '\0';
        char *text = buf;
        size_t tlen = len;
        if (norm)
            text = normalize_text(buf, len, ssml, lang, &tlen);
        char res[64];
        if (run(text, tlen, ssml, res, sizeof(res)) < 0)
            failed = 1;
        if (!quiet || strcmp(res, "ok") != 0)
            printf("%d\t%zu\t%s\t%.60s\n", n, tlen, res, text);
        if (text != buf)
            free(text);
        n++;
        len = 0;
    } while (c != EOF);
    free(buf);
    return failed;
}
