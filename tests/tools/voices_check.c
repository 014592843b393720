/*
 * voices_check: check worker/voices.c against the installed espeak-ng.
 *
 *   voices_check [-a] [spec...]
 *
 * For every spec (by default: every identifier, name, name with '_' for ' ',
 * last part of an identifier and language code of every installed voice, each
 * also with a variant), in a child process:
 *   - what `espeak-ng -v spec` would load: espeak_ng_SetVoiceByName(spec), else
 *     espeak_ng_SetVoiceByProperties() with the spec as language, as the CLI
 *     does; the identifier of espeak_GetCurrentVoice();
 *   - what voices_resolve() makes of it;
 *   - that espeak_ng_SetVoiceByName() of the resolved string loads exactly that
 *     voice and variant, and that synthesizing a sentence with it gives audio.
 * One line per spec; "DIFF" marks a spec espeak-ng resolves to another voice,
 * "FAIL" a resolved voice that does not load or speak. mbrola voices are
 * resolved (with -a) but never loaded: mbrola is not installed. Exit status 1
 * when any line says FAIL.
 */
#include "../../worker/voices.h"

#include <espeak-ng/espeak_ng.h>
#include <espeak-ng/speak_lib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

static long samples;

static int count(short *wav, int n, espeak_EVENT *events)
{
    (void)wav;
    (void)events;
    samples += n > 0 ? n : 0;
    return 0;
}

static int refuse_uri(int type, const char *uri, const char *base)
{
    (void)type;
    (void)uri;
    (void)base;
    return 1;
}

/* What the CLI loads for spec; "" when it refuses it. */
static void cli_voice(const char *spec, char *out, size_t len)
{
    out[0] = '\0';
    if (espeak_ng_SetVoiceByName(spec) != ENS_OK) {
        espeak_VOICE sel;
        memset(&sel, 0, sizeof(sel));
        sel.languages = spec;
        if (espeak_ng_SetVoiceByProperties(&sel) != ENS_OK)
            return;
    }
    espeak_VOICE *v = espeak_GetCurrentVoice();
    if (v && v->identifier)
        snprintf(out, len, "%s", v->identifier);
}

/* In a child: 0 when the line is ok or only a difference, 1 for FAIL. */
static int check(const struct voice_list *list, const char *spec)
{
    char cli[128], err[256] = "";
    struct voice_choice c;
    int rc = voices_resolve(list, spec, 1, &c, err, sizeof(err));
    int mbrola = rc == 0 && c.mbrola;
    if (!mbrola)
        cli_voice(spec, cli, sizeof(cli));
    else
        snprintf(cli, sizeof(cli), "(mbrola, not loaded)");
    if (rc < 0) {
        printf("%-40s espeak=%-28s -> %s\n", spec, cli[0] ? cli : "(refused)", err);
        return 0;
    }
    /* the CLI drops the variant of a language code; compare voices only */
    char cli_base[128];
    snprintf(cli_base, sizeof(cli_base), "%s", cli);
    char *plus = strchr(cli_base, '+');
    if (plus)
        *plus = '\0';
    const char *tag = mbrola || strcasecmp(cli_base, c.identifier) == 0 ? "" : " DIFF";
    if (mbrola) {
        printf("%-40s %s -> %s [%s]\n", spec, cli, c.espeak, c.language);
        return 0;
    }
    if (espeak_ng_SetVoiceByName(c.espeak) != ENS_OK) {
        printf("%-40s espeak=%-28s -> %s FAIL: SetVoiceByName\n", spec, cli, c.espeak);
        return 1;
    }
    espeak_VOICE *v = espeak_GetCurrentVoice();
    if (!v || !v->identifier || strcmp(v->identifier, c.espeak) != 0) {
        printf("%-40s -> %s FAIL: loaded %s\n", spec, c.espeak,
               v && v->identifier ? v->identifier : "?");
        return 1;
    }
    samples = 0;
    const char *text = "Hello, this is a test.";
    espeak_ng_Synthesize(text, strlen(text) + 1, 0, POS_CHARACTER, 0,
                         espeakCHARS_UTF8 | espeakENDPAUSE, NULL, NULL);
    printf("%-40s espeak=%-28s -> %s [%s] %ld samples%s%s\n", spec, cli, c.espeak, c.language,
           samples, tag, samples > 0 ? "" : " FAIL: no audio");
    return samples > 0 ? 0 : 1;
}

static int run(const struct voice_list *list, const char *spec)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int rc = check(list, spec);
        fflush(stdout);
        _exit(rc);
    }
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st)) {
        printf("%-40s FAIL: child died (signal %d)\n", spec, WTERMSIG(st));
        return 1;
    }
    return WEXITSTATUS(st);
}

int main(int argc, char **argv)
{
    espeak_ng_InitializePath(NULL);
    if (espeak_ng_Initialize(NULL) != ENS_OK ||
        espeak_ng_InitializeOutput(ENOUTPUT_MODE_SYNCHRONOUS, 0, NULL) != ENS_OK)
        return 2;
    espeak_SetSynthCallback(count);
    espeak_SetUriCallback(refuse_uri);
    struct voice_list list;
    char err[256];
    if (voices_load(&list, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    printf("# %zu voices, %zu variants\n", list.n_voices, list.n_variants);
    int failed = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            failed |= run(&list, argv[i]);
        return failed;
    }
    static const char *const variants[] = {"m3", "klatt", "Mr_Serious", "female2", "5"};
    for (size_t i = 0; i < list.n_voices; i++) {
        const struct voice_info *v = &list.voices[i];
        char spec[256];
        failed |= run(&list, v->identifier);
        failed |= run(&list, v->name);
        snprintf(spec, sizeof(spec), "%s", v->name);
        for (char *p = spec; *p; p++)
            if (*p == ' ')
                *p = '_';
        failed |= run(&list, spec);
        const char *slash = strrchr(v->identifier, '/');
        if (slash)
            failed |= run(&list, slash + 1);
        for (int j = 0; j < v->n_langs; j++)
            failed |= run(&list, v->langs[j].code);
        snprintf(spec, sizeof(spec), "%s+%s", v->identifier, variants[i % 5]);
        failed |= run(&list, spec);
        if (v->n_langs > 0) {
            snprintf(spec, sizeof(spec), "%s+%s", v->langs[0].code, variants[(i + 1) % 5]);
            failed |= run(&list, spec);
        }
    }
    for (size_t i = 0; i < list.n_variants; i++) {
        char spec[256];
        snprintf(spec, sizeof(spec), "en-us+%s", list.variants[i].file);
        failed |= run(&list, spec);
        snprintf(spec, sizeof(spec), "en+%s", list.variants[i].name);
        failed |= run(&list, spec);
    }
    voices_free(&list);
    return failed;
}
