#include "voices.h"
#include "../common/util.h"

#include <ctype.h>
#include <espeak-ng/speak_lib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* How many names an error message suggests. */
#define SUGGEST_MAX 8

static int valid_str(const char *s)
{
    return s && s[0] && strlen(s) < VOICES_STR_MAX;
}

int voices_add(struct voice_list *list, const char *name, const char *identifier, const char *langs,
               int age)
{
    if (!valid_str(name) || !valid_str(identifier))
        return -1;
    list->voices = xrealloc(list->voices, (list->n_voices + 1) * sizeof(*list->voices));
    struct voice_info *v = &list->voices[list->n_voices];
    memset(v, 0, sizeof(*v));
    strlcpy_c2a(v->name, name, sizeof(v->name));
    strlcpy_c2a(v->identifier, identifier, sizeof(v->identifier));
    v->age = age;
    v->mbrola = strncmp(identifier, "mb/", 3) == 0;
    for (const char *p = langs; p && *p && v->n_langs < VOICES_LANG_MAX;) {
        int prio = (unsigned char)*p++;
        size_t n = strlen(p);
        if (n > 0 && n < VOICES_STR_MAX) {
            struct voice_lang *l = &v->langs[v->n_langs++];
            l->priority = prio;
            for (size_t i = 0; i <= n; i++)
                l->code[i] = (char)tolower((unsigned char)p[i]);
        }
        p += n + 1;
    }
    list->n_voices++;
    return 0;
}

int voices_add_variant(struct voice_list *list, const char *name, const char *file)
{
    if (!valid_str(name) || !valid_str(file))
        return -1;
    list->variants = xrealloc(list->variants, (list->n_variants + 1) * sizeof(*list->variants));
    struct voice_variant *v = &list->variants[list->n_variants++];
    strlcpy_c2a(v->name, name, sizeof(v->name));
    strlcpy_c2a(v->file, file, sizeof(v->file));
    return 0;
}

void voices_free(struct voice_list *list)
{
    free(list->voices);
    free(list->variants);
    memset(list, 0, sizeof(*list));
}

/* Case-insensitive, and '_' in the spec stands for ' ' (as `espeak-ng
 * --voices` prints names). */
static int name_eq(const char *spec, const char *name)
{
    for (;; spec++, name++) {
        int a = tolower((unsigned char)*spec), b = tolower((unsigned char)*name);
        if (a == '_' && b == ' ')
            continue;
        if (a != b)
            return 0;
        if (!a)
            return 1;
    }
}

static const char *last_part(const char *identifier)
{
    const char *slash = strrchr(identifier, '/');
    return slash ? slash + 1 : identifier;
}

/* espeak-ng's ScoreVoice() for a language request (no gender, no age asked):
 * 0 when no language of the voice shares the first part of spec. spec is
 * lower case; n_parts is its number of '-'-separated parts. */
static int score_voice(const struct voice_info *v, const char *spec, int spec_parts)
{
    int score = 0;
    for (int i = 0; i < v->n_langs; i++) {
        const char *code = v->langs[i].code;
        int matching = 1, matching_parts = 0, n_parts = 1;
        size_t spec_len = strlen(spec);
        for (size_t ix = 0;; ix++) {
            int c1 = ix < spec_len ? spec[ix] : 0;
            int c2 = code[ix];
            if (c1 == '-')
                c1 = 0;
            if (c2 == '-')
                c2 = 0;
            if (c1 != c2)
                matching = 0;
            if (code[ix] == '-') {
                n_parts++;
                if (matching)
                    matching_parts++;
            }
            if (code[ix] == 0)
                break;
        }
        matching_parts += matching;
        if (matching_parts == 0)
            continue;
        int x = 5;
        if (spec_parts > matching_parts)
            x -= spec_parts - matching_parts;
        if (n_parts > matching_parts)
            x -= n_parts - matching_parts;
        x = x * 100 - v->langs[i].priority * 2;
        if (x > score)
            score = x;
    }
    if (score == 0)
        return 0;
    if (v->age != 0) {
        int ratio = 30 * 100 / v->age;
        if (ratio < 100)
            ratio = 10000 / ratio;
        ratio = (ratio - 100) / 10;
        int x = 5 - ratio;
        score += x > 0 ? 0 : x;
    }
    return score < 1 ? 1 : score;
}

/* The voice espeak-ng's SetVoiceByProperties() picks for a language code:
 * the best score, ties to the smaller name; never an mbrola voice. */
static const struct voice_info *by_language(const struct voice_list *list, const char *spec)
{
    char lang[VOICES_STR_MAX];
    size_t n = strlen(spec);
    if (n == 0 || n >= sizeof(lang))
        return NULL;
    int parts = 1;
    for (size_t i = 0; i <= n; i++) {
        lang[i] = (char)tolower((unsigned char)spec[i]);
        parts += lang[i] == '-';
    }
    const struct voice_info *best = NULL;
    int best_score = 0;
    for (size_t i = 0; i < list->n_voices; i++) {
        const struct voice_info *v = &list->voices[i];
        if (v->mbrola)
            continue;
        int s = score_voice(v, lang, parts);
        if (s > 0 && (s > best_score || (s == best_score && strcmp(v->name, best->name) < 0))) {
            best = v;
            best_score = s;
        }
    }
    return best;
}

static const struct voice_info *find_voice(const struct voice_list *list, const char *base)
{
    for (size_t i = 0; i < list->n_voices; i++)
        if (strcasecmp(base, list->voices[i].identifier) == 0)
            return &list->voices[i];
    for (size_t i = 0; i < list->n_voices; i++)
        if (name_eq(base, list->voices[i].name))
            return &list->voices[i];
    /* espeak-ng keeps the last voice whose file name ends in "/base" */
    const struct voice_info *found = NULL;
    for (size_t i = 0; i < list->n_voices; i++)
        if (strchr(list->voices[i].identifier, '/') &&
            strcasecmp(base, last_part(list->voices[i].identifier)) == 0)
            found = &list->voices[i];
    return found ? found : by_language(list, base);
}

static const struct voice_variant *find_variant(const struct voice_list *list, const char *spec)
{
    char file[16];
    if (isdigit((unsigned char)spec[0])) {
        /* espeak-ng: atoi(); 1-9 are m1-m9, 10 and up f0, f1, ... */
        char *end;
        long n = strtol(spec, &end, 10);
        if (*end || n <= 0 || n > 99)
            return NULL;
        if (n < 10)
            snprintf(file, sizeof(file), "m%ld", n);
        else
            snprintf(file, sizeof(file), "f%ld", n - 10);
        spec = file;
    }
    for (size_t i = 0; i < list->n_variants; i++)
        if (name_eq(spec, list->variants[i].file))
            return &list->variants[i];
    for (size_t i = 0; i < list->n_variants; i++)
        if (name_eq(spec, list->variants[i].name))
            return &list->variants[i];
    return NULL;
}

/* "a, b, c, ..." into buf: the names that start like spec, or else the first
 * few of all. */
static void suggest(char *buf, size_t len, const char *spec, const char *const *names,
                    size_t n_names)
{
    size_t o = 0, shown = 0;
    buf[0] = '\0';
    for (int pass = 0; pass < 2 && shown == 0; pass++) {
        for (size_t i = 0; i < n_names; i++) {
            if (pass == 0 && (strlen(spec) < 2 || strncasecmp(names[i], spec, 2) != 0))
                continue;
            int k = shown == SUGGEST_MAX
                        ? snprintf(buf + o, len - o, ", ...")
                        : snprintf(buf + o, len - o, "%s%s", shown ? ", " : "", names[i]);
            if (k < 0 || (size_t)k >= len - o || shown++ == SUGGEST_MAX)
                return;
            o += (size_t)k;
        }
    }
}

static int voice_unknown(const struct voice_list *list, const char *base, int allow_mbrola,
                         char *err, size_t errlen)
{
    /* suggest language codes (what people type), distinct, in list order */
    const char **names = xcalloc(list->n_voices + 1, sizeof(*names));
    size_t n = 0;
    for (size_t i = 0; i < list->n_voices; i++) {
        const struct voice_info *v = &list->voices[i];
        if ((v->mbrola && !allow_mbrola) || v->n_langs == 0)
            continue;
        const char *code = v->langs[0].code;
        int dup = 0;
        for (size_t j = 0; j < n && !dup; j++)
            dup = strcmp(names[j], code) == 0;
        if (!dup)
            names[n++] = code;
    }
    char sug[160];
    suggest(sug, sizeof(sug), base, names, n);
    free(names);
    snprintf(err, errlen, "voice: %s is not installed (try one of: %s)", base, sug);
    return -1;
}

static int variant_unknown(const struct voice_list *list, const char *variant, char *err,
                           size_t errlen)
{
    const char **names = xcalloc(list->n_variants + 1, sizeof(*names));
    for (size_t i = 0; i < list->n_variants; i++)
        names[i] = list->variants[i].file;
    char sug[160];
    suggest(sug, sizeof(sug), variant, names, list->n_variants);
    free(names);
    snprintf(err, errlen, "voice: variant %s is not installed (try one of: %s)", variant, sug);
    return -1;
}

int voices_resolve(const struct voice_list *list, const char *spec, int allow_mbrola,
                   struct voice_choice *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    char base[2 * VOICES_STR_MAX];
    size_t n = strlen(spec);
    if (n == 0 || n >= sizeof(base)) {
        snprintf(err, errlen, "voice: 1..%zu characters", sizeof(base) - 1);
        return -1;
    }
    memcpy(base, spec, n + 1);
    char *variant = strchr(base, '+');
    if (variant)
        *variant++ = '\0';
    if (!base[0] || (variant && !variant[0])) {
        snprintf(err, errlen, "voice: %s is not a voice (name or language[+variant])", spec);
        return -1;
    }

    const struct voice_info *v = find_voice(list, base);
    if (!v)
        return voice_unknown(list, base, allow_mbrola, err, errlen);
    if (v->mbrola && !allow_mbrola) {
        snprintf(err, errlen, "voice: %s is an mbrola voice, not allowed here", v->identifier);
        return -1;
    }
    const struct voice_variant *var = NULL;
    if (variant) {
        var = find_variant(list, variant);
        if (!var)
            return variant_unknown(list, variant, err, errlen);
    }
    /* espeak-ng's buffers: "!v/" + file in 40 bytes, identifier + "+" + file in 40 */
    size_t need = strlen(v->identifier) + (var ? 1 + strlen(var->file) : 0);
    if (need >= VOICES_ESPEAK_MAX || (var && strlen(var->file) + 3 >= 40)) {
        snprintf(err, errlen, "voice: %s%s%s is longer than espeak-ng can load", v->identifier,
                 var ? "+" : "", var ? var->file : "");
        return -1;
    }
    size_t id_len = strlen(v->identifier);
    memcpy(out->espeak, v->identifier, id_len + 1);
    if (var) {
        out->espeak[id_len] = '+';
        memcpy(out->espeak + id_len + 1, var->file, strlen(var->file) + 1);
    }
    strlcpy_c2a(out->identifier, v->identifier, sizeof(out->identifier));
    if (var)
        strlcpy_c2a(out->variant, var->file, sizeof(out->variant));
    if (v->n_langs > 0)
        strlcpy_c2a(out->language, v->langs[0].code, sizeof(out->language));
    out->mbrola = v->mbrola;
    return 0;
}

/* Add what espeak_ListVoices(spec) answers; variants (identifier "!v/...")
 * go to the variant list. */
static void add_listed(struct voice_list *list, espeak_VOICE *spec)
{
    const espeak_VOICE **vs = espeak_ListVoices(spec);
    for (size_t i = 0; vs && vs[i]; i++) {
        const espeak_VOICE *v = vs[i];
        if (!v->name || !v->identifier)
            continue;
        if (strncmp(v->identifier, "!v/", 3) == 0)
            voices_add_variant(list, v->name, v->identifier + 3);
        else
            voices_add(list, v->name, v->identifier, v->languages, v->age);
    }
}

int voices_load(struct voice_list *list, char *err, size_t errlen)
{
    memset(list, 0, sizeof(*list));
    add_listed(list, NULL); /* every voice but the mbrola voices and variants */
    if (list->n_voices == 0) {
        snprintf(err, errlen, "espeak-ng lists no voices (is espeak-ng-data installed?)");
        return -1;
    }
    espeak_VOICE spec;
    memset(&spec, 0, sizeof(spec));
    spec.languages = "mb"; /* the voices/mb directory */
    add_listed(list, &spec);
    spec.languages = "variant";
    add_listed(list, &spec);
    return 0;
}
