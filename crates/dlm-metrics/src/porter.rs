//! The Porter stemmer exactly as NLTK's `nltk.stem.porter.PorterStemmer` computes it, in
//! two of its modes, ported rule by rule from nltk 3.x `porter.py` (Porter, "An algorithm
//! for suffix stripping", 1980):
//!
//! * [`stem`]: the default `NLTK_EXTENSIONS` mode, which `rouge-score==0.1.2` uses
//!   (irregular forms pool, `ies`/`ied` on 4-letter words, the `(*c and not c) Y -> I`
//!   step 1c, the `bli`/`fulli`/`logi` step 2 rules, the 2-letter `*o` case, words of 1-2
//!   letters untouched);
//! * [`stem_original`]: `ORIGINAL_ALGORITHM`, the published algorithm, which py-rouge
//!   uses (`PorterStemmer('ORIGINAL_ALGORITHM')`, [`crate::py_rouge`]).

type Word = Vec<char>;

/// Which of NLTK's modes to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    NltkExtensions,
    Original,
}
/// A rule's condition on the stem left after removing the suffix.
type Cond<'a> = &'a dyn Fn(&[char]) -> bool;

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u')
}

/// `_is_consonant(word, i)`: not a vowel, and a `y` is a consonant only after a vowel
/// (or at the start): walk back over a run of `y`s flipping the answer each time.
fn is_consonant(w: &[char], mut i: usize) -> bool {
    if is_vowel(w[i]) {
        return false;
    }
    if w[i] == 'y' {
        let mut negate = false;
        while i > 0 && w[i] == 'y' {
            negate = !negate;
            i -= 1;
        }
        // (word[i] not in vowels) != negate
        return is_vowel(w[i]) == negate;
    }
    true
}

/// `_consonant_flags`: the same classification for every position in one pass.
fn consonant_flags(w: &[char]) -> Vec<bool> {
    let mut flags: Vec<bool> = Vec::with_capacity(w.len());
    for (i, &c) in w.iter().enumerate() {
        let f = if is_vowel(c) {
            false
        } else if c == 'y' {
            i == 0 || !flags[i - 1]
        } else {
            true
        };
        flags.push(f);
    }
    flags
}

/// `_measure`: m in `[C](VC){m}[V]`, i.e. the number of vowel→consonant transitions.
fn measure(stem: &[char]) -> usize {
    let f = consonant_flags(stem);
    f.windows(2).filter(|p| !p[0] && p[1]).count()
}

fn contains_vowel(stem: &[char]) -> bool {
    consonant_flags(stem).iter().any(|&c| !c)
}

/// `*d`: ends with a double consonant.
fn ends_double_consonant(w: &[char]) -> bool {
    let n = w.len();
    n >= 2 && w[n - 1] == w[n - 2] && is_consonant(w, n - 1)
}

/// `*o`: ends consonant-vowel-consonant, last not w/x/y; NLTK adds 2-letter vowel-consonant.
fn ends_cvc(w: &[char], mode: Mode) -> bool {
    let n = w.len();
    (n >= 3
        && is_consonant(w, n - 3)
        && !is_consonant(w, n - 2)
        && is_consonant(w, n - 1)
        && !matches!(w[n - 1], 'w' | 'x' | 'y'))
        || (mode == Mode::NltkExtensions && n == 2 && !is_consonant(w, 0) && is_consonant(w, 1))
}

fn ends_with(w: &[char], suffix: &str) -> bool {
    let s: Vec<char> = suffix.chars().collect();
    w.len() >= s.len() && w[w.len() - s.len()..] == s[..]
}

fn cat(stem: &[char], tail: &str) -> Word {
    let mut v = stem.to_vec();
    v.extend(tail.chars());
    v
}

/// Which suffix a rule removes.
enum Suffix<'a> {
    /// a literal suffix ("" matches every word)
    Lit(&'a str),
    /// `*d`: a double consonant, of which the stem keeps neither letter
    DoubleConsonant,
}

struct Rule<'a> {
    suffix: Suffix<'a>,
    replacement: String,
    condition: Option<Cond<'a>>,
}

fn rule<'a>(suffix: &'a str, replacement: &str, condition: Option<Cond<'a>>) -> Rule<'a> {
    Rule {
        suffix: Suffix::Lit(suffix),
        replacement: replacement.to_string(),
        condition,
    }
}

/// `_apply_rule_list`: the FIRST rule whose suffix matches decides; if its condition
/// fails the word is returned unchanged (later rules are not tried).
fn apply_rule_list(word: &[char], rules: &[Rule]) -> Word {
    for r in rules {
        let stem_len = match r.suffix {
            Suffix::DoubleConsonant => {
                if !ends_double_consonant(word) {
                    continue;
                }
                word.len() - 2
            }
            Suffix::Lit(s) => {
                if !ends_with(word, s) {
                    continue;
                }
                word.len() - s.chars().count()
            }
        };
        let stem = &word[..stem_len];
        return if r.condition.is_none_or(|c| c(stem)) {
            cat(stem, &r.replacement)
        } else {
            word.to_vec()
        };
    }
    word.to_vec()
}

fn positive_measure(stem: &[char]) -> bool {
    measure(stem) > 0
}

fn step1a(word: &[char], mode: Mode) -> Word {
    if mode == Mode::NltkExtensions && ends_with(word, "ies") && word.len() == 4 {
        return cat(&word[..1], "ie");
    }
    apply_rule_list(
        word,
        &[
            rule("sses", "ss", None),
            rule("ies", "i", None),
            rule("ss", "ss", None),
            rule("s", "", None),
        ],
    )
}

fn step1b(word: &[char], mode: Mode) -> Word {
    if mode == Mode::NltkExtensions && ends_with(word, "ied") {
        return cat(
            &word[..word.len() - 3],
            if word.len() == 4 { "ie" } else { "i" },
        );
    }
    if ends_with(word, "eed") {
        let stem = &word[..word.len() - 3];
        return if measure(stem) > 0 {
            cat(stem, "ee")
        } else {
            word.to_vec()
        };
    }
    let mut intermediate: Option<&[char]> = None;
    for suffix in ["ed", "ing"] {
        if ends_with(word, suffix) {
            let stem = &word[..word.len() - suffix.len()];
            if contains_vowel(stem) {
                intermediate = Some(stem);
                break;
            }
        }
    }
    let Some(im) = intermediate else {
        return word.to_vec();
    };
    // `contains_vowel` guarantees a non-empty stem, so `last` exists.
    let last = im.last().copied().unwrap_or('a');
    let not_lsz = |_: &[char]| !matches!(last, 'l' | 's' | 'z');
    let m1_cvc = |s: &[char]| measure(s) == 1 && ends_cvc(s, mode);
    apply_rule_list(
        im,
        &[
            rule("at", "ate", None),
            rule("bl", "ble", None),
            rule("iz", "ize", None),
            Rule {
                suffix: Suffix::DoubleConsonant,
                replacement: last.to_string(),
                condition: Some(&not_lsz),
            },
            rule("", "e", Some(&m1_cvc)),
        ],
    )
}

fn step1c(word: &[char], mode: Mode) -> Word {
    // NLTK: (*c and not c) Y -> I, i.e. y after a consonant that is not the whole stem;
    // the original: (*v*) Y -> I.
    let nltk = |s: &[char]| s.len() > 1 && is_consonant(s, s.len() - 1);
    let original = |s: &[char]| contains_vowel(s);
    let cond: Cond = match mode {
        Mode::NltkExtensions => &nltk,
        Mode::Original => &original,
    };
    apply_rule_list(word, &[rule("y", "i", Some(cond))])
}

fn step2(word: &[char], mode: Mode) -> Word {
    let nltk = mode == Mode::NltkExtensions;
    if nltk && ends_with(word, "alli") && positive_measure(&word[..word.len() - 4]) {
        return step2(&cat(&word[..word.len() - 4], "al"), mode);
    }
    let pm: &dyn Fn(&[char]) -> bool = &positive_measure;
    // logi -> log when the measure of the word minus "ogi" (stem + "l") is positive
    let logi_cond = |_: &[char]| word.len() >= 3 && positive_measure(&word[..word.len() - 3]);
    let mut rules = vec![
        rule("ational", "ate", Some(pm)),
        rule("tional", "tion", Some(pm)),
        rule("enci", "ence", Some(pm)),
        rule("anci", "ance", Some(pm)),
        rule("izer", "ize", Some(pm)),
        if nltk {
            rule("bli", "ble", Some(pm))
        } else {
            rule("abli", "able", Some(pm))
        },
        rule("alli", "al", Some(pm)),
        rule("entli", "ent", Some(pm)),
        rule("eli", "e", Some(pm)),
        rule("ousli", "ous", Some(pm)),
        rule("ization", "ize", Some(pm)),
        rule("ation", "ate", Some(pm)),
        rule("ator", "ate", Some(pm)),
        rule("alism", "al", Some(pm)),
        rule("iveness", "ive", Some(pm)),
        rule("fulness", "ful", Some(pm)),
        rule("ousness", "ous", Some(pm)),
        rule("aliti", "al", Some(pm)),
        rule("iviti", "ive", Some(pm)),
        rule("biliti", "ble", Some(pm)),
    ];
    if nltk {
        rules.push(rule("fulli", "ful", Some(pm)));
        rules.push(rule("logi", "log", Some(&logi_cond)));
    }
    apply_rule_list(word, &rules)
}

fn step3(word: &[char]) -> Word {
    let pm: &dyn Fn(&[char]) -> bool = &positive_measure;
    apply_rule_list(
        word,
        &[
            rule("icate", "ic", Some(pm)),
            rule("ative", "", Some(pm)),
            rule("alize", "al", Some(pm)),
            rule("iciti", "ic", Some(pm)),
            rule("ical", "ic", Some(pm)),
            rule("ful", "", Some(pm)),
            rule("ness", "", Some(pm)),
        ],
    )
}

fn step4(word: &[char]) -> Word {
    let gt1 = |s: &[char]| measure(s) > 1;
    let g: &dyn Fn(&[char]) -> bool = &gt1;
    let ion = |s: &[char]| measure(s) > 1 && matches!(s.last(), Some('s' | 't'));
    let rules = [
        rule("al", "", Some(g)),
        rule("ance", "", Some(g)),
        rule("ence", "", Some(g)),
        rule("er", "", Some(g)),
        rule("ic", "", Some(g)),
        rule("able", "", Some(g)),
        rule("ible", "", Some(g)),
        rule("ant", "", Some(g)),
        rule("ement", "", Some(g)),
        rule("ment", "", Some(g)),
        rule("ent", "", Some(g)),
        rule("ion", "", Some(&ion)),
        rule("ou", "", Some(g)),
        rule("ism", "", Some(g)),
        rule("ate", "", Some(g)),
        rule("iti", "", Some(g)),
        rule("ous", "", Some(g)),
        rule("ive", "", Some(g)),
        rule("ize", "", Some(g)),
    ];
    apply_rule_list(word, &rules)
}

fn step5a(word: &[char], mode: Mode) -> Word {
    if ends_with(word, "e") {
        let stem = &word[..word.len() - 1];
        let m = measure(stem);
        if m > 1 || (m == 1 && !ends_cvc(stem, mode)) {
            return stem.to_vec();
        }
    }
    word.to_vec()
}

fn step5b(word: &[char]) -> Word {
    let cond = |_: &[char]| !word.is_empty() && measure(&word[..word.len() - 1]) > 1;
    apply_rule_list(word, &[rule("ll", "l", Some(&cond))])
}

/// NLTK's irregular forms (`NLTK_EXTENSIONS` pool), looked up before any rule.
fn irregular(word: &str) -> Option<&'static str> {
    Some(match word {
        "sky" | "skies" => "sky",
        "dying" => "die",
        "lying" => "lie",
        "tying" => "tie",
        "news" => "news",
        "innings" | "inning" => "inning",
        "outings" | "outing" => "outing",
        "cannings" | "canning" => "canning",
        "howe" => "howe",
        "proceed" => "proceed",
        "exceed" => "exceed",
        "succeed" => "succeed",
        _ => return None,
    })
}

/// `PorterStemmer().stem(word)` (NLTK_EXTENSIONS mode, `to_lowercase=True`).
pub fn stem(word: &str) -> String {
    stem_in(word, Mode::NltkExtensions)
}

/// `PorterStemmer(PorterStemmer.ORIGINAL_ALGORITHM).stem(word)`: no irregular forms, no
/// short-word exemption, the published rules.
pub fn stem_original(word: &str) -> String {
    stem_in(word, Mode::Original)
}

fn stem_in(word: &str, mode: Mode) -> String {
    let lower = word.to_lowercase();
    if mode == Mode::NltkExtensions {
        if let Some(s) = irregular(&lower) {
            return s.to_string();
        }
        if word.chars().count() <= 2 {
            return lower;
        }
    }
    let w: Word = lower.chars().collect();
    if w.is_empty() {
        return lower;
    }
    let w = step1a(&w, mode);
    let w = step1b(&w, mode);
    let w = step1c(&w, mode);
    let w = step2(&w, mode);
    let w = step3(&w);
    let w = step4(&w);
    let w = step5a(&w, mode);
    let w = step5b(&w);
    w.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_examples() {
        // Porter (1980) / NLTK outputs
        let cases = [
            ("caresses", "caress"),
            ("ponies", "poni"),
            ("ties", "tie"), // NLTK: 4-letter "ies" -> "ie"
            ("cats", "cat"),
            ("feed", "feed"),
            ("agreed", "agre"),
            ("plastered", "plaster"),
            ("motoring", "motor"),
            ("sing", "sing"),
            ("conflated", "conflat"),
            ("hopping", "hop"),
            ("falling", "fall"),
            ("filing", "file"),
            ("happy", "happi"),
            ("enjoy", "enjoy"),
            ("relational", "relat"),
            ("generalization", "gener"),
            ("controlling", "control"),
            ("dying", "die"),
            ("skies", "sky"),
            ("running", "run"),
            ("the", "the"),
            ("is", "is"),
            ("yyyy", "yyyi"),
        ];
        for (w, s) in cases {
            assert_eq!(stem(w), s, "stem({w})");
        }
    }

    #[test]
    fn measure_examples() {
        // m=0: tr ee tree y by ; m=1: trouble oats trees ivy ; m=2: troubles private oaten
        for (w, m) in [
            ("tr", 0),
            ("tree", 0),
            ("by", 0),
            ("trouble", 1),
            ("ivy", 1),
            ("troubles", 2),
            ("private", 2),
        ] {
            let v: Vec<char> = w.chars().collect();
            assert_eq!(measure(&v), m, "{w}");
        }
    }

    #[test]
    fn flags_match_is_consonant() {
        for w in ["syzygy", "yyyay", "toy", "y", "ayyy"] {
            let v: Vec<char> = w.chars().collect();
            let f = consonant_flags(&v);
            for (i, &flag) in f.iter().enumerate() {
                assert_eq!(flag, is_consonant(&v, i), "{w} at {i}");
            }
        }
    }

    #[test]
    fn original_algorithm_differs_where_nltk_extends_it() {
        // nltk PorterStemmer('ORIGINAL_ALGORITHM') outputs
        for (w, s) in [
            ("ties", "ti"),        // no 4-letter "ies" -> "ie"
            ("died", "di"),        // no "ied" rule
            ("dying", "dy"),       // no irregular pool
            ("enjoy", "enjoi"),    // (*v*) Y -> I
            ("happy", "happi"),
            ("conformabli", "conform"), // "abli" -> "able", then step 4 drops "able"
            ("hopefulli", "hopefulli"), // no "fulli"
            ("archaeologi", "archaeologi"), // no "logi"
            ("caresses", "caress"),
            ("relational", "relat"),
        ] {
            assert_eq!(stem_original(w), s, "stem_original({w})");
        }
        assert_eq!(stem_original("as"), "a"); // no short-word exemption
    }

    #[test]
    fn short_and_empty() {
        assert_eq!(stem(""), "");
        assert_eq!(stem("A"), "a");
        assert_eq!(stem("Ties"), "tie");
    }
}
