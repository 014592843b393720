/*
 * Text normalisation before espeak-ng: keep the inputs that are known to crash
 * libespeak-ng 1.51 (Debian 12) away from it, and make the long junk tokens of
 * real articles speakable. Ordinary prose comes back byte for byte: apart from
 * URLs (rule 2), every rule needs something no sentence has, so a normal job
 * sounds the same with or without this module.
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
 *  1. Code points that make espeak-ng read freed memory (a heap use-after-free
 *     in TranslateLetter: a character of another script that the script's own
 *     language cannot name) become a space. For every voice: Indic digits,
 *     signs and unassigned code points (U+0970, U+0980-U+0DFF), a few Armenian
 *     and Georgian ones, old Hangul jamo (U+1180-U+11FF); U+0BAA (Tamil PA)
 *     only when it stands alone. For voices other than English ones, which
 *     cannot name foreign alphabets: also rare Greek letters (U+03CF-U+03FC),
 *     and any Armenian, Devanagari, Bengali, Gurmukhi, Gujarati, Tamil,
 *     Kannada, Malayalam, Sinhala or Hangul jamo letter that stands alone (a
 *     one-letter word). Tables in normalize.c, found by synthesizing every
 *     code point. A voice reading its own script does not crash on them: lang
 *     (the voice's language, "ta", "bn", ...) keeps that script's.
 *  2. A URL (a token, after opening brackets or quotes, that starts with
 *     http://, https://, ftp:// or www.) is read as its host: scheme, user,
 *     port, path, query and fragment and a leading "www." are dropped;
 *     trailing sentence punctuation stays. "(see https://www.example.com/a?b)."
 *     becomes "(see example.com).".
 *  3. A run of 4 or more of the same punctuation character becomes one ("..."
 *     for dots): "!!!!!!" -> "!", "-------" -> "-", "......" -> "...".
 *  4. A dotted run of single letters ("a.b.c.d...", "a . b . c", "a .b .c",
 *     "a.b. c.d. e.f.", a dotted host name; not "a. b. c.", whose dots
 *     espeak-ng drops) longer than 16 letters is cut into runs of 16: the dot
 *     after every 16th letter becomes a space. espeak-ng copies the letters of
 *     such a run into an 80-byte stack buffer (CheckDottedAbbrev): 81 bytes
 *     overflow it, 85 ("a." x 85, "x.y. " x 43) or 57 two-byte letters
 *     ("\u00e9." x 57) abort the process with "stack smashing detected".
 *  5. A token longer than 64 code points is split at its inner punctuation:
 *     each run of punctuation between two other characters becomes one space,
 *     except '.' or ',' between two digits. Tokens of scripts written without
 *     spaces (CJK, kana, Thai, Lao, Khmer, Myanmar) are left to espeak-ng.
 *  6. A word (letters, digits, apostrophes) longer than 64 code points gets a
 *     space after every 64 (not before a combining mark). espeak-ng strips
 *     chained suffixes into a 200-byte buffer: 68 "s'" or "'s" (136 bytes),
 *     "good" and 67 "ness" in one word abort the process.
 *  7. When more than 200 words (runs of letters or digits, punctuation
 *     characters) would fall within 800 bytes of text without a clause break
 *     (",;:!?" and white space), " , " is put in first. espeak-ng keeps 300
 *     words per clause and reads, and sets a flag, past its table when a
 *     clause has more ("a a a ..." x 300, "a-a-a-...", the pieces rule 4
 *     leaves); prose has a comma long before.
 *
 * One pass over the text, then over each token a constant number of times:
 * O(n). The text is read in pieces of at most 64K characters, cut at white
 * space, so memory besides the result does not grow with it. The result is
 * valid UTF-8 when the input is.
 */
#ifndef C2A_NORMALIZE_H
#define C2A_NORMALIZE_H

#include <stddef.h>

#define NORMALIZE_PUNCT_RUN 4   /* rule 3 */
#define NORMALIZE_DOTTED_MAX 16 /* rule 4 */
#define NORMALIZE_TOKEN_MAX 64  /* rule 5 */
#define NORMALIZE_WORD_MAX 64   /* rule 6 */

/* Normalise text[0..len) (UTF-8; SSML when ssml is set) for a voice of
 * language lang: the voice's primary language, "en-us" say, as
 * voices_resolve() gives it; NULL when unknown, then rule 1 replaces all it
 * knows. Returns a new NUL-terminated string the caller frees, and its length
 * in *out_len; never NULL (running out of memory is fatal). Pure: no I/O, no
 * global state; any thread, any process. */
char *normalize_text(const char *text, size_t len, int ssml, const char *lang, size_t *out_len);

#endif
