//! A message's text as the web app shows it: links and a small Markdown
//! subset, never HTML.
//!
//! What is recognised (docs/protocol.md, "Text"; docs/security.md on why
//! it is safe): code blocks between
//! lines of three backticks, quotes (lines starting with `>`), and inline
//! `` `code` ``, `**bold**`, `*italic*` / `_italic_`, and `http(s)://`
//! links. Everything else is text, as typed. The parser only splits the
//! text into [`Block`]s and [`Span`]s; the view writes them with Yew, which
//! escapes every string, so no text can become markup. Links are only ever
//! `http:` or `https:` (a `javascript:` "link" stays text), open in a new
//! tab with `rel="noopener noreferrer"`. The terminal client and the
//! gateway show the text as sent.

use yew::prelude::*;

/// An inline piece of a paragraph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span<'a> {
    Text(&'a str),
    Code(&'a str),
    Bold(&'a str),
    Italic(&'a str),
    Link(&'a str),
}

/// A block of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block<'a> {
    /// Lines of text (line breaks kept), with their spans.
    Para(Vec<Span<'a>>),
    /// Quoted lines (the `>` and one space taken off each), with spans.
    Quote(Vec<Span<'a>>),
    /// The lines between two ``` fences, as typed.
    Code(&'a str),
}

// Everything below scans bytes (every mark is ASCII, so each index it
// stops at is a character boundary): `str::find` with a string pattern
// would bring the two-way searcher into the bundle, and `char`
// predicates Unicode's tables.

/// The index just past the line that starts at `from` (its `\n`
/// included), or the end of `text`.
fn next_line(text: &str, from: usize) -> usize {
    text.as_bytes()[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |at| from + at + 1)
}

/// Splits `text` into blocks: fenced code, quotes, and the paragraphs
/// between them (each a run of lines, line breaks kept).
pub fn blocks(text: &str) -> Vec<Block<'_>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let rest = &text[at..];
        // A fence opens a code block only at the start of a line, and only
        // if another fence closes it.
        if rest.starts_with("```") {
            let body = next_line(text, at);
            if let Some((code_end, after)) = closing_fence(text, body) {
                let code = &text[body..code_end];
                out.push(Block::Code(code.strip_suffix('\n').unwrap_or(code)));
                at = after;
                continue;
            }
        }
        let quote = rest.starts_with('>');
        // A run of lines of the same kind: quoted, or neither quoted nor
        // a fence.
        let mut end = next_line(text, at);
        while end < text.len() {
            let line = &text[end..];
            let same = if quote {
                line.starts_with('>')
            } else {
                !line.starts_with('>') && !line.starts_with("```")
            };
            if !same {
                break;
            }
            end = next_line(text, end);
        }
        let mut spans = Vec::new();
        if quote {
            let mut line = at;
            while line < end {
                let next = next_line(text, line);
                let from = line + 1 + usize::from(text.as_bytes().get(line + 1) == Some(&b' '));
                inline(&text[from.min(next)..next], &mut spans);
                line = next;
            }
        } else {
            inline(&text[at..end], &mut spans);
        }
        trim_last_newline(&mut spans);
        if !spans.is_empty() {
            out.push(if quote {
                Block::Quote(spans)
            } else {
                Block::Para(spans)
            });
        }
        at = end;
    }
    out
}

/// The line from `from` on that is a closing fence: (where it starts,
/// where the line after it starts).
fn closing_fence(text: &str, mut from: usize) -> Option<(usize, usize)> {
    while from < text.len() {
        let next = next_line(text, from);
        let line = &text.as_bytes()[from..next];
        if line.starts_with(b"```") && line[3..].iter().all(u8::is_ascii_whitespace) {
            return Some((from, next));
        }
        from = next;
    }
    None
}

/// A block's last line break is the break before the next block.
fn trim_last_newline(spans: &mut Vec<Span<'_>>) {
    if let Some(Span::Text(t)) = spans.last_mut() {
        *t = t.strip_suffix('\n').unwrap_or(t);
        if t.is_empty() {
            spans.pop();
        }
    }
}

/// Appends the spans of `text` to `out`.
pub fn inline<'a>(text: &'a str, out: &mut Vec<Span<'a>>) {
    let bytes = text.as_bytes();
    let mut plain = 0; // start of the text not yet given out
    let mut i = 0;
    while i < bytes.len() {
        let found = match bytes[i] {
            b'`' => closing(bytes, i + 1, b"`").map(|end| (Span::Code(&text[i + 1..end]), end + 1)),
            b'*' if bytes[i..].starts_with(b"**") => {
                emphasis(bytes, i + 2, b"**").map(|end| (Span::Bold(&text[i + 2..end]), end + 2))
            }
            b'*' => {
                emphasis(bytes, i + 1, b"*").map(|end| (Span::Italic(&text[i + 1..end]), end + 1))
            }
            // `_` only around words: snake_case stays as typed.
            b'_' if i == 0 || !is_word(bytes[i - 1]) => emphasis(bytes, i + 1, b"_")
                .filter(|&end| end + 1 >= bytes.len() || !is_word(bytes[end + 1]))
                .map(|end| (Span::Italic(&text[i + 1..end]), end + 1)),
            b'h' if i == 0 || !is_word(bytes[i - 1]) => {
                let scheme = if bytes[i..].starts_with(b"https://") {
                    8
                } else if bytes[i..].starts_with(b"http://") {
                    7
                } else {
                    0
                };
                let end = link_end(bytes, i);
                (scheme > 0 && end > i + scheme).then(|| (Span::Link(&text[i..end]), end))
            }
            _ => None,
        };
        match found {
            Some((span, next)) => {
                if plain < i {
                    out.push(Span::Text(&text[plain..i]));
                }
                out.push(span);
                i = next;
                plain = next;
            }
            None => i += 1,
        }
    }
    if plain < text.len() {
        out.push(Span::Text(&text[plain..]));
    }
}

/// Whether byte `b` belongs to a word: an ASCII letter or digit, or any
/// byte of a character beyond ASCII (search marks words the same way).
pub fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

/// Where `mark` next occurs from `from`, on the same line and not right
/// at `from` (an empty span is text).
fn closing(bytes: &[u8], from: usize, mark: &[u8]) -> Option<usize> {
    if bytes[from.min(bytes.len())..].starts_with(mark) {
        return None;
    }
    (from + 1..bytes.len())
        .take_while(|&at| bytes[at - 1] != b'\n')
        .find(|&at| bytes[at] != b'\n' && bytes[at..].starts_with(mark))
}

/// Like [`closing`], for emphasis: the span neither starts nor ends with
/// a space (`2 * 3 * 4` stays text).
fn emphasis(bytes: &[u8], from: usize, mark: &[u8]) -> Option<usize> {
    let end = closing(bytes, from, mark)?;
    let spaced = bytes[from].is_ascii_whitespace() || bytes[end - 1].is_ascii_whitespace();
    (!spaced).then_some(end)
}

/// The end of a link starting at `start`: up to a space or a character a
/// URL does not hold here, less trailing punctuation (and a closing
/// bracket that has no opening one in the link).
fn link_end(bytes: &[u8], start: usize) -> usize {
    let mut end = (start..bytes.len())
        .find(|&at| bytes[at].is_ascii_whitespace() || b"<>\"`".contains(&bytes[at]))
        .unwrap_or(bytes.len());
    while end > start {
        let link = &bytes[start..end];
        let count = |c: u8| link.iter().filter(|&&b| b == c).count();
        let last = bytes[end - 1];
        if b".,;:!?'*_".contains(&last) || (last == b')' && count(b'(') < count(b')')) {
            end -= 1;
        } else {
            break;
        }
    }
    end
}

/// Splits `text` around each `@name` that mentions `me` (ASCII letters
/// ignoring case, as the app compares names elsewhere): `(before, @name)`
/// pairs, then what is left. The `@` starts the text or follows a
/// character that cannot be in a name, and no name character follows.
pub fn mentions<'a>(text: &'a str, me: &str) -> (Vec<(&'a str, &'a str)>, &'a str) {
    let name_byte = |b: u8| is_word(b) || b == b'_' || b == b'-';
    let (bytes, me) = (text.as_bytes(), me.as_bytes());
    let mut found = Vec::new();
    let (mut plain, mut i) = (0, 0);
    while !me.is_empty() && i < bytes.len() {
        let end = i + 1 + me.len();
        if bytes[i] == b'@'
            && (i == 0
                || !(name_byte(bytes[i - 1]) || bytes[i - 1] == b'.' || bytes[i - 1] == b'@'))
            && end <= bytes.len()
            && bytes[i + 1..end].eq_ignore_ascii_case(me)
            && bytes.get(end).is_none_or(|&b| !name_byte(b))
        {
            found.push((&text[plain..i], &text[i..end]));
            plain = end;
            i = end;
        } else {
            i += 1;
        }
    }
    (found, &text[plain..])
}

fn view_spans(spans: &[Span<'_>], me: &str) -> Html {
    spans
        .iter()
        .map(|span| match *span {
            Span::Text(t) => {
                let (found, rest) = mentions(t, me);
                html! {
                    <>
                        { for found.into_iter().map(|(before, at)| html! {
                            <>{ before }<mark class="mention">{ at }</mark></>
                        }) }
                        { rest }
                    </>
                }
            }
            Span::Code(t) => html! { <code>{ t }</code> },
            Span::Bold(t) => html! { <strong>{ t }</strong> },
            Span::Italic(t) => html! { <em>{ t }</em> },
            Span::Link(url) => html! {
                <a href={url.to_string()} target="_blank" rel="noopener noreferrer">{ url }</a>
            },
        })
        .collect()
}

/// A message's text as blocks (`<p class="text">`, `<blockquote>`,
/// `<pre>`), with each `@name` of the reader `me` marked.
pub fn view_text(text: &str, me: &str) -> Html {
    blocks(text)
        .iter()
        .map(|block| match block {
            Block::Para(spans) => html! { <p class="text">{ view_spans(spans, me) }</p> },
            Block::Quote(spans) => {
                html! { <blockquote class="text">{ view_spans(spans, me) }</blockquote> }
            }
            Block::Code(code) => html! { <pre class="code"><code>{ *code }</code></pre> },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Span::*;

    fn spans(text: &str) -> Vec<Span<'_>> {
        let mut out = Vec::new();
        inline(text, &mut out);
        out
    }

    #[test]
    fn plain_text_is_one_span() {
        assert_eq!(spans("hello there"), [Text("hello there")]);
        assert_eq!(blocks("hi\nthere"), [Block::Para(vec![Text("hi\nthere")])]);
        assert_eq!(blocks(""), []);
    }

    #[test]
    fn emphasis_code_and_their_edges() {
        assert_eq!(
            spans("a **b** *c* _d_ `e *f*`"),
            [
                Text("a "),
                Bold("b"),
                Text(" "),
                Italic("c"),
                Text(" "),
                Italic("d"),
                Text(" "),
                Code("e *f*")
            ]
        );
        // Not emphasis: arithmetic, snake_case, a lone mark, an empty pair.
        for text in ["2 * 3 * 4", "snake_case_name", "a * b", "**", "``", "x_y"] {
            assert_eq!(spans(text), [Text(text)], "{text}");
        }
        // Marks do not reach across lines.
        assert_eq!(spans("*a\nb*"), [Text("*a\nb*")]);
    }

    #[test]
    fn links_are_http_only_and_leave_punctuation_out() {
        assert_eq!(
            spans("see https://example.com/a?b=1."),
            [Text("see "), Link("https://example.com/a?b=1"), Text(".")]
        );
        assert_eq!(
            spans("(http://x.org/wiki/Rust_(language))"),
            [
                Text("("),
                Link("http://x.org/wiki/Rust_(language)"),
                Text(")")
            ]
        );
        for text in [
            "javascript:alert(1)",
            "data:text/html,hi",
            "ftp://x",
            "https://",
            "xhttps://a.b",
        ] {
            assert!(spans(text).iter().all(|s| matches!(s, Text(_))), "{text}");
        }
        assert_eq!(
            spans("<https://a.b/c>"),
            [Text("<"), Link("https://a.b/c"), Text(">")]
        );
    }

    #[test]
    fn quotes_and_code_blocks() {
        assert_eq!(
            blocks("> you said\n> **this**\nyes\n```\nfn main() {\n  *x*\n}\n```\nbye"),
            [
                Block::Quote(vec![Text("you said\n"), Bold("this")]),
                Block::Para(vec![Text("yes")]),
                Block::Code("fn main() {\n  *x*\n}"),
                Block::Para(vec![Text("bye")]),
            ]
        );
        // An unclosed fence is text.
        assert_eq!(
            blocks("```\nnot closed"),
            [Block::Para(vec![Text("```\nnot closed")])]
        );
    }

    #[test]
    fn the_readers_mentions_are_found() {
        assert_eq!(
            mentions("@Al hi @al, not @alan or x@al or @al_1; @AL", "al"),
            (
                vec![
                    ("", "@Al"),
                    (" hi ", "@al"),
                    (", not @alan or x@al or @al_1; ", "@AL")
                ],
                ""
            )
        );
        assert_eq!(mentions("no one", "al"), (vec![], "no one"));
        assert_eq!(mentions("@al", ""), (vec![], "@al"));
    }

    #[test]
    fn markup_in_the_text_is_text() {
        assert_eq!(
            spans("<b>hi</b> & <script>"),
            [Text("<b>hi</b> & <script>")]
        );
    }
}
