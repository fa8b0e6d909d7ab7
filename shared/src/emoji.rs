//! What a reaction may be: one emoji.
//!
//! Clients offer [`QUICK`], a small set one click away, and accept any
//! other single emoji typed or pasted. The server checks every `react`
//! with [`validate_emoji`].

/// The reactions clients offer first, in order.
pub const QUICK: [&str; 6] = ["👍", "❤️", "😂", "🎉", "😮", "😢"];

/// Most characters (Unicode scalar values) of one emoji: a family with
/// skin tones, joined by U+200D, is long; a sentence of emoji is longer.
pub const MAX_EMOJI_CHARS: usize = 10;

/// Most distinct emoji on one message; one more gets `invalid_emoji`.
pub const MAX_REACTIONS_PER_MESSAGE: usize = 20;

/// Checks that `emoji` is one emoji: 1–[`MAX_EMOJI_CHARS`] characters,
/// every one from the emoji blocks or a piece that builds one (zero-width
/// joiner, variation selector, keycap, tag), starting with a pictograph;
/// and at most one pictograph that is not joined to the one before it
/// (so `👍👍` is refused, `👩‍💻` and `🇫🇷` are not). `Err` says what is wrong.
pub fn validate_emoji(emoji: &str) -> Result<(), String> {
    let chars: Vec<char> = emoji.chars().collect();
    if chars.is_empty() {
        return Err("the emoji is empty".into());
    }
    if chars.len() > MAX_EMOJI_CHARS {
        return Err(format!("an emoji is at most {MAX_EMOJI_CHARS} characters"));
    }
    if !is_pictograph(chars[0]) {
        return Err("a reaction is one emoji".into());
    }
    let mut bases = 0;
    let mut flag_letters = 0;
    let mut joined = false;
    for &c in &chars {
        if is_regional_indicator(c) {
            flag_letters += 1;
            if flag_letters > 2 {
                return Err("a reaction is one emoji".into());
            }
            if flag_letters == 1 {
                bases += 1;
            }
        } else if is_pictograph(c) {
            if !joined && !is_skin_tone(c) {
                bases += 1;
            }
            joined = false;
        } else if c == '\u{200D}' {
            joined = true;
        } else if is_modifier(c) {
        } else {
            return Err("a reaction is one emoji".into());
        }
    }
    if bases != 1 {
        return Err("a reaction is one emoji".into());
    }
    Ok(())
}

fn is_regional_indicator(c: char) -> bool {
    ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
}

fn is_skin_tone(c: char) -> bool {
    ('\u{1F3FB}'..='\u{1F3FF}').contains(&c)
}

/// A character that is an emoji on its own (or, with U+FE0F, shown as one).
fn is_pictograph(c: char) -> bool {
    matches!(c,
        '\u{00A9}' | '\u{00AE}' | '\u{203C}' | '\u{2049}' | '\u{2122}' | '\u{2139}'
        | '\u{2194}'..='\u{21AA}'
        | '\u{231A}'..='\u{23FF}'
        | '\u{24C2}'
        | '\u{25AA}'..='\u{27BF}'
        | '\u{2934}' | '\u{2935}'
        | '\u{2B05}'..='\u{2B55}'
        | '\u{3030}' | '\u{303D}' | '\u{3297}' | '\u{3299}'
        | '\u{1F000}'..='\u{1FAFF}')
}

/// A character that only modifies the pictograph before it.
fn is_modifier(c: char) -> bool {
    matches!(
        c,
        '\u{FE0F}' | '\u{FE0E}' | '\u{20E3}' | '\u{E0020}'..='\u{E007F}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_emoji_passes() {
        for ok in QUICK {
            assert_eq!(validate_emoji(ok), Ok(()), "{ok}");
        }
        for ok in ["👩‍💻", "👍🏽", "🇫🇷", "👨‍👩‍👧‍👦", "🏴‍☠️", "☕", "✅", "⭐"]
        {
            assert_eq!(validate_emoji(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "a",
            "ok",
            "👍👍",
            "👍 ",
            " 👍",
            "1",
            "é",
            "<b>",
            "🇫🇷🇫",
            "\u{200D}",
            "👍a",
            "☕☕",
        ] {
            assert!(validate_emoji(bad).is_err(), "{bad:?}");
        }
        assert!(validate_emoji(&"👍".repeat(11)).is_err());
    }
}
