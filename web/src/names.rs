//! The user-name rule (`hubbub_protocol::names::validate_name`) with the
//! browser's Unicode tables: whether a character is a letter or digit of
//! any script is asked of a `\p{Alphabetic}` / `\p{N}` regular expression,
//! the same sets as Rust's `char::is_alphanumeric`, so the bundle does not
//! carry Rust's copy of those tables (~1.8 KB gzipped).

/// Checks a user name as the server does; `Err` says what is wrong.
pub fn validate_name(name: &str) -> Result<(), String> {
    hubbub_protocol::names::validate_name_with(name, letter_or_digit)
}

/// Whether `c` is a letter or digit of any script (`char::is_alphanumeric`).
#[cfg(target_arch = "wasm32")]
fn letter_or_digit(c: char) -> bool {
    thread_local! {
        static LETTER_OR_DIGIT: js_sys::RegExp =
            js_sys::RegExp::new(r"^[\p{Alphabetic}\p{N}]$", "u");
    }
    c.is_ascii_alphanumeric()
        || (!c.is_ascii() && LETTER_OR_DIGIT.with(|re| re.test(c.encode_utf8(&mut [0; 4]))))
}

/// Natively (the unit tests) Rust's own tables.
#[cfg(not(target_arch = "wasm32"))]
fn letter_or_digit(c: char) -> bool {
    c.is_alphanumeric()
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_as_the_server_checks_them() {
        assert!(super::validate_name("Zoë_2.0-x").is_ok());
        assert!(super::validate_name("日本").is_ok());
        assert!(super::validate_name("a b").is_err());
        assert!(super::validate_name("_a").is_err());
    }
}
