/*
 * Text normalisation before espeak-ng: keep the inputs that are known to crash
 * libespeak-ng 1.51 (Debian 12) away from it, and make the long junk tokens of
 * real articles speakable. Ordinary prose comes back byte for byte: every rule
 * below needs something no sentence has, so a normal job sounds the same with
 * or without this module.
 *
 * Text is cut into tokens at ASCII white space. With ssml set, tags (from '<'
 * to the matching '>', quotes respected; comments; an unclosed tag runs to
 * the end) are copied untouched, attribute values included, and do not end a
 * token (espeak-ng joins the text on both sides of most tags); an entity
 * (&amp; &lt; &gt; &quot; &apos; &nbsp; &#N; &#xN;) counts as the character
 * it stands for and is copied as written unless a rule replaces it. Inside a
 * token, "punctuation" means ASCII punctuation.
 *
 * The rules, in the order they apply:
 *  1. Code points that make espeak-ng read freed memory (heap use-after-free in
 *     TranslateLetter/LookupDict2: a letter of another script that the script's
 *     own language cannot name) become a space: Indic digits, signs and
 *     unassigned code points in U+0970 and U+0980-U+0DFF, a few Armenian and
 *     Georgian ones, old Hangul jamo U+1180-U+11FF (table in normalize.c,
 *     found by synthesizing every code point of the BMP). A voice reading its
 *     own script does not crash on them, so they are kept when lang (the voice's
 *     language, "ta", "bn", ...) is that script's language. U+0BAA (Tamil PA)
 *     is replaced only when it stands alone.
 *  2. A URL (a token, after opening brackets or quotes, that starts with
 *     http://, https://, ftp:// or www.) is read as its host: scheme, user,
 *     port, path, query and fragment and a leading "www." are dropped;
 *     trailing sentence punctuation stays. "(see https://www.example.com/a?b)."
 *     becomes "(see example.com).".
 *  3. A run of 4 or more of the same punctuation character becomes one ("..."
 *     for dots): "!!!!!!" -> "!", "-------" -> "-", "......" -> "...".
 *  4. A dotted run of single letters ("a.b.c.d...", "a . b . c", "a .b .c",
 *     "a.b. c.d. e.f.", a dotted host name; not "a. b. c.", whose dots
 *     espeak-ng drops) longer than
 *     16 letters is cut into runs of 16: the dot after every 16th letter
 *     becomes a space. espeak-ng copies the letters of such a run into an
 *     80-byte stack buffer (CheckDottedAbbrev): 81 bytes overflow it, 85 abort
 *     the process ("stack smashing detected").
 *  5. A token longer than 64 code points is split at its inner punctuation:
 *     each run of punctuation between two other characters becomes one space,
 *     except '.' or ',' between two digits. Tokens of scripts written without
 *     spaces (CJK, kana, Thai, Lao, Khmer, Myanmar) are left to espeak-ng.
 *  6. A word (letters, digits, apostrophes) longer than 64 code points gets a
 *     space after every 64 (never before a combining mark). espeak-ng strips
 *     suffixes from such words into a 200-byte buffer: about 66 "'s" or "ness"
 *     in one word ("s's's'...", 136 bytes) abort the process.
 *  7. When more than 200 words (runs of letters or digits, punctuation
 *     characters) would fall within 800 bytes of text without a clause break
 *     (",;:!?" and white space), " , " is put in first. espeak-ng keeps 300
 *     words per clause and reads and writes past the table when there are
 *     more ("a a a a ...", "a-a-a-..."); prose has a comma long before.
 *
 * One pass over the text, then over each token a constant number of times:
 * O(n). The result is valid UTF-8 when the input is.
 */
#ifndef C2A_NORMALIZE_H
#define C2A_NORMALIZE_H

#include <stddef.h>

#define NORMALIZE_PUNCT_RUN 4   /* rule 3 */
#define NORMALIZE_DOTTED_MAX 16 /* rule 4 */
#define NORMALIZE_TOKEN_MAX 64  /* rule 5 */
#define NORMALIZE_WORD_MAX 64   /* rule 6 */

/* Normalise text[0..len) (UTF-8; SSML when ssml is set) for a voice of
 * language lang (the primary language of the voice, e.g. "en-us" from
 * voices_resolve(); NULL when unknown: then every rule-1 code point is
 * replaced). Returns a new NUL-terminated string the caller frees, its length
 * in *out_len; never NULL (allocation failure is fatal). Pure: no I/O, no
 * global state, any thread or process. */
char *normalize_text(const char *text, size_t len, int ssml, const char *lang, size_t *out_len);

#endif
