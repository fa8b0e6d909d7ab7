//! Rules for user names and room names, checked by the server and mirrored by
//! clients so they can say what is wrong before sending.
//!
//! - A user name is 1–32 characters: letters, digits (any script), `_`, `-`
//!   and `.`, starting with a letter or digit. Names are unique ignoring case;
//!   [`name_key`] gives the key to compare by.
//! - A room name is 1–32 characters of `a-z`, `0-9`, `-` and `_`, starting
//!   with a letter or digit (like a channel name: case can't create look-alikes).
//! - A private conversation between two users is a room too, named after
//!   them: `@` and the two [`name_key`]s, sorted, joined by `+`
//!   ([`conversation`]). `@` and `+` are in neither name, so nothing else
//!   can be called that, and only the two may read it.

/// Longest user name, in characters.
pub const MAX_NAME_CHARS: usize = 32;
/// Longest room name, in characters.
pub const MAX_ROOM_CHARS: usize = 32;

/// Checks a user name; `Err` carries a sentence saying what is wrong.
pub fn validate_name(name: &str) -> Result<(), String> {
    validate_name_with(name, char::is_alphanumeric)
}

/// [`validate_name`] with "a letter or digit, any script" decided by
/// `letter_or_digit`, which must agree with [`char::is_alphanumeric`]
/// (Unicode `Alphabetic`, or a number). The web app passes the browser's
/// own Unicode tables instead of carrying Rust's in its bundle.
pub fn validate_name_with(
    name: &str,
    letter_or_digit: impl Fn(char) -> bool,
) -> Result<(), String> {
    let count = name.chars().count();
    if count == 0 {
        return Err("name is empty".into());
    }
    if count > MAX_NAME_CHARS {
        return Err(format!("name is longer than {MAX_NAME_CHARS} characters"));
    }
    let first = name.chars().next().unwrap_or(' ');
    if !letter_or_digit(first) {
        return Err("name must start with a letter or digit".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| !(letter_or_digit(c) || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "name may hold letters, digits, '_', '-' and '.', not {bad:?}"
        ));
    }
    Ok(())
}

/// The key under which names are unique: the lowercased name.
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// Most `@name`s of one message the server resolves.
pub const MAX_MENTIONS: usize = 20;

/// The names `text` mentions as `@name`, each once (ignoring case), in
/// order, at most [`MAX_MENTIONS`]: an `@` at the start or after a
/// character that cannot be in a name, then a valid name. A name's trailing
/// `.`, `-` or `_` is punctuation (`@bob.` is `bob`). Whether each is a
/// user is the server's to say (`message` `mentions`).
pub fn mentioned(text: &str) -> Vec<&str> {
    let is_name_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.');
    let mut found: Vec<&str> = Vec::new();
    let mut prev: Option<char> = None;
    for (at, c) in text.char_indices() {
        let after = prev.is_none_or(|p| !is_name_char(p) && p != '@');
        prev = Some(c);
        if c != '@' || !after {
            continue;
        }
        let rest = &text[at + 1..];
        let end = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
        let name = rest[..end].trim_end_matches(['.', '-', '_']);
        if validate_name(name).is_ok() && !found.iter().any(|f| name_key(f) == name_key(name)) {
            found.push(name);
            if found.len() == MAX_MENTIONS {
                break;
            }
        }
    }
    found
}

/// Checks a room name; `Err` carries a sentence saying what is wrong.
pub fn validate_room(room: &str) -> Result<(), String> {
    let count = room.chars().count();
    if count == 0 {
        return Err("room name is empty".into());
    }
    if count > MAX_ROOM_CHARS {
        return Err(format!(
            "room name is longer than {MAX_ROOM_CHARS} characters"
        ));
    }
    if !room.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return Err("room name must start with a-z or 0-9".into());
    }
    if let Some(bad) = room
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_')))
    {
        return Err(format!(
            "room name may hold a-z, 0-9, '-' and '_', not {bad:?}"
        ));
    }
    Ok(())
}

/// The room name of the private conversation between the users whose
/// names are `a` and `b` (any case; the order does not matter).
pub fn conversation(a: &str, b: &str) -> String {
    let (a, b) = (name_key(a), name_key(b));
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    format!("@{first}+{second}")
}

/// Whether `room` names a private conversation (it may still be malformed:
/// see [`conversation_parties`]).
pub fn is_conversation(room: &str) -> bool {
    room.starts_with('@')
}

/// The two name keys of the conversation `room`, or `None` if `room` is
/// not a well-formed conversation name (two different valid lowercase
/// names, sorted).
pub fn conversation_parties(room: &str) -> Option<(&str, &str)> {
    let (a, b) = room.strip_prefix('@')?.split_once('+')?;
    let valid = |key: &str| validate_name(key).is_ok() && name_key(key) == key;
    (a < b && valid(a) && valid(b)).then_some((a, b))
}

/// The other person of the conversation `room` for the user whose name
/// key is `me`, if `me` is one of its two.
pub fn conversation_peer<'r>(room: &'r str, me: &str) -> Option<&'r str> {
    let (a, b) = room.strip_prefix('@')?.split_once('+')?;
    match () {
        () if a == me => Some(b),
        () if b == me => Some(a),
        () => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn mentions_are_at_names_each_once() {
        assert_eq!(mentioned("hi @bob and @Alice."), vec!["bob", "Alice"]);
        assert_eq!(mentioned("@bob @BOB @bob"), vec!["bob"]);
        assert_eq!(mentioned("(@jörg), @x_1-"), vec!["jörg", "x_1"]);
        assert!(mentioned("mail me at bob@example.com").is_empty());
        assert!(mentioned("@ @@ @. @-x").is_empty());
        let many: String = (0..30).map(|i| format!("@u{i} ")).collect();
        assert_eq!(mentioned(&many).len(), MAX_MENTIONS);
    }

    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("alice").is_ok());
        assert!(validate_name("Zoë_2.0-x").is_ok());
        assert!(validate_name("日本").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("_alice").is_err());
        assert!(validate_name("al ice").is_err());
        assert!(validate_name("<script>").is_err());
        assert!(validate_name(&"a".repeat(32)).is_ok());
        assert!(validate_name(&"a".repeat(33)).is_err());
        assert_eq!(name_key("Alice"), name_key("aLICE"));
    }

    #[test]
    fn rooms() {
        assert!(validate_room("lobby").is_ok());
        assert!(validate_room("rust-2026_q4").is_ok());
        assert!(validate_room("Lobby").is_err());
        assert!(validate_room("-x").is_err());
        assert!(validate_room("a b").is_err());
        assert!(validate_room("").is_err());
        assert!(validate_room(&"r".repeat(33)).is_err());
    }

    #[test]
    fn a_conversation_is_named_after_its_two_people_in_either_order() {
        assert_eq!(conversation("Bob", "alice"), "@alice+bob");
        assert_eq!(conversation("alice", "BOB"), "@alice+bob");
        assert!(is_conversation("@alice+bob"));
        assert!(!is_conversation("lobby"));
        assert_eq!(conversation_parties("@alice+bob"), Some(("alice", "bob")));
        assert_eq!(conversation_peer("@alice+bob", "bob"), Some("alice"));
        assert_eq!(conversation_peer("@alice+bob", "carol"), None);
        // Not sorted, the same name twice, not lowercase, not names.
        for bad in [
            "@bob+alice",
            "@bob+bob",
            "@Alice+bob",
            "@alice",
            "@+bob",
            "@a+b+c",
            "@a b+c",
        ] {
            assert_eq!(conversation_parties(bad), None, "{bad}");
        }
        assert!(
            validate_room("@alice+bob").is_err(),
            "not a room anyone can create"
        );
    }
}
