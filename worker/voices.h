/*
 * Voice resolution: turn what a job calls a voice into the one string
 * espeak_ng_SetVoiceByName() loads reliably, the way `espeak-ng -v` understands
 * voices, but checked against the installed list first.
 *
 * A voice spec is BASE or BASE+VARIANT. BASE is matched, case-insensitively,
 * in this order (the order of espeak-ng's SetVoiceByName, then of the CLI's
 * fallback to SetVoiceByProperties):
 *   1. a voice file, by identifier: "gmw/en-US", "roa/fr", "eu";
 *   2. a voice name as espeak_ListVoices() gives it, "English (America)", or as
 *      `espeak-ng --voices` prints it, with '_' for ' ': "English_(America)";
 *   3. the last part of an identifier: "en-US", "fr", "mb-en1";
 *   4. a language code, as the languages of `espeak-ng --voices` list them:
 *      "en-gb", "de", "fr-fr", "zh": the voice espeak-ng's own scoring picks
 *      for that language (mbrola voices never win here, as in espeak-ng).
 * VARIANT (`espeak-ng --voices=variant`) is matched by its file ("m3",
 * "klatt", "Mr serious"), then by its name ("male3", "Mr_Serious"), both
 * case-insensitively; a number is espeak-ng's shorthand (1-9: m1-m9, 11-15:
 * f1-f5). Unlike espeak-ng, which ignores a variant it cannot load and drops
 * the variant of a language code, an unknown variant is an error and the
 * variant of a language code is kept.
 *
 * The result names the voice by identifier ("gmw/en-US+m3"): exactly one voice
 * file and one variant file, whatever the spec was. Its length is bounded so
 * that espeak-ng's fixed buffers hold it (SetVoiceByName copies 59 bytes;
 * "!v/" + a variant file must fit 40 bytes and identifier + "+" + variant file
 * another 40: a longer variant aborts the process with "buffer overflow
 * detected").
 *
 * mbrola voices ("mb/mb-en1") make espeak-ng start the external mbrola
 * program: they resolve only when the caller allows them.
 *
 * voices_resolve() is pure and works on any struct voice_list; voices_load()
 * fills one from espeak-ng and must be called after espeak_ng_Initialize(), in
 * the process that synthesizes (an engine child calls it once).
 */
#ifndef C2A_VOICES_H
#define C2A_VOICES_H

#include <stddef.h>

#define VOICES_STR_MAX 64    /* names, identifiers, variant files (with the NUL) */
#define VOICES_LANG_MAX 8    /* languages kept per voice */
#define VOICES_ESPEAK_MAX 40 /* identifier + "+" + variant file, with the NUL */

struct voice_lang {
    int priority;              /* espeak-ng's: lower is preferred */
    char code[VOICES_STR_MAX]; /* "en-gb", lower case */
};

struct voice_info {
    char name[VOICES_STR_MAX];       /* "English (America)" */
    char identifier[VOICES_STR_MAX]; /* "gmw/en-US": the file under voices/ or lang/ */
    int age;                         /* 0 = unspecified */
    int mbrola;                      /* the identifier starts with "mb/" */
    int n_langs;
    struct voice_lang langs[VOICES_LANG_MAX]; /* in espeak-ng's order, first = primary */
};

struct voice_variant {
    char name[VOICES_STR_MAX]; /* "male3" */
    char file[VOICES_STR_MAX]; /* "m3": the file under voices/!v/ */
};

/* The installed voices (mbrola ones included, flagged) and variants. */
struct voice_list {
    struct voice_info *voices;
    size_t n_voices;
    struct voice_variant *variants;
    size_t n_variants;
};

struct voice_choice {
    char espeak[VOICES_ESPEAK_MAX];  /* for espeak_ng_SetVoiceByName: "gmw/en-US+m3" */
    char identifier[VOICES_STR_MAX]; /* "gmw/en-US" */
    char variant[VOICES_STR_MAX];    /* "m3", "" for none */
    char language[VOICES_STR_MAX];   /* the voice's primary language: "en-us" */
    int mbrola;
};

/* Resolve spec against list (see above). Returns 0 with out filled, or -1 with
 * a short reason in err ("voice: xx is not installed (try one of: ...)",
 * "voice: variant zz is not installed (try one of: ...)", "voice: mb/mb-en1 is
 * an mbrola voice, not allowed here"). Pure: no I/O, no espeak-ng. */
int voices_resolve(const struct voice_list *list, const char *spec, int allow_mbrola,
                   struct voice_choice *out, char *err, size_t errlen);

/* Build list from espeak-ng's espeak_ListVoices(): all voices, the mbrola
 * voices and the variants. Call after espeak_ng_Initialize(); the list owns its
 * memory (voices_free). Returns 0, or -1 with err filled when espeak-ng lists
 * no voice at all. espeak_ListVoices() frees its previous answer on every call:
 * nothing of it is kept. */
int voices_load(struct voice_list *list, char *err, size_t errlen);
void voices_free(struct voice_list *list);

/* Append a voice or a variant to list (voices_load's building blocks, also for
 * tests). Strings longer than VOICES_STR_MAX-1 are refused (-1): such a voice
 * could not be loaded through espeak-ng's buffers anyway. langs is espeak-ng's
 * packed form: priority byte, code, NUL, ..., a final 0 byte. */
int voices_add(struct voice_list *list, const char *name, const char *identifier, const char *langs,
               int age);
int voices_add_variant(struct voice_list *list, const char *name, const char *file);

#endif
