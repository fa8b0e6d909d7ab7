//! The full-screen view (ratatui + crossterm): the current room's messages
//! on the left (each with its handle `#SEQ`, a reply with its quote, a
//! message that mentions the user in bold behind a yellow `@`), rooms and
//! private conversations (`@bob`) with their unread counts (mentions
//! apart, `@N`) and who is online on the right, the input line below, and a status line with the connection
//! state.
//!
//! Keys: Enter sends the line, Tab switches to the next room, PgUp/PgDn
//! scroll, Esc or Ctrl-C quits (twice: at once, without waiting for the server).

use crossterm::event::{Event, EventStream, KeyCode, KeyEventKind, KeyModifiers};
use futures_util::StreamExt;
use hubbub_client::{defang, quote_text, Kind, Link};
use hubbub_protocol::ClientMsg;
use ratatui::layout::{Constraint, Layout, Position};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;
use tokio::sync::mpsc;

use crate::app::{clock, retry_in, App};
use crate::net::{NetEvent, Request};

/// Lines PgUp/PgDn move by.
const PAGE: usize = 10;

pub async fn run(
    mut app: App,
    requests: mpsc::UnboundedSender<Request>,
    mut events: mpsc::UnboundedReceiver<NetEvent>,
) -> std::io::Result<()> {
    // Restores the terminal on panic too.
    let mut terminal = ratatui::init();
    let mut keys = EventStream::new();
    let mut input = String::new();
    let mut scroll = 0usize;
    let mut quitting = false;
    let result = loop {
        if let Err(err) = terminal.draw(|frame| draw(frame, &app, &input, scroll)) {
            break Err(err);
        }
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => {
                    let (sends, _) = app.on_net(event);
                    for request in sends {
                        let _ = requests.send(request);
                    }
                    if app.done {
                        break Ok(());
                    }
                }
                None => break Ok(()),
            },
            key = keys.next() => match key {
                Some(Ok(Event::Key(key))) if key.kind == KeyEventKind::Press => {
                    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
                    match key.code {
                        KeyCode::Esc | KeyCode::Char('c') | KeyCode::Char('d') if ctrl || key.code == KeyCode::Esc => {
                            if quitting {
                                break Ok(());
                            }
                            quitting = true;
                            let _ = requests.send(Request::Frame(ClientMsg::Quit));
                        }
                        KeyCode::Enter => {
                            let line = std::mem::take(&mut input);
                            let (sends, _) = app.on_input(&line);
                            for request in sends {
                                quitting |= request == Request::Frame(ClientMsg::Quit);
                                let _ = requests.send(request);
                            }
                            scroll = 0;
                        }
                        KeyCode::Char('u') if ctrl => input.clear(),
                        KeyCode::Char(c) if !ctrl => input.push(c),
                        KeyCode::Backspace => {
                            input.pop();
                        }
                        KeyCode::Tab => {
                            if let Some(read) = app.next_room() {
                                let _ = requests.send(read);
                            }
                            scroll = 0;
                        }
                        KeyCode::PageUp => scroll = scroll.saturating_add(PAGE),
                        KeyCode::PageDown => scroll = scroll.saturating_sub(PAGE),
                        _ => {}
                    }
                }
                Some(Ok(_)) => {} // resize and the rest: redraw
                Some(Err(err)) => break Err(err),
                None => break Ok(()),
            },
        }
    };
    ratatui::restore();
    result
}

/// A stable color per name, so a speaker is easy to follow.
fn color_of(name: &str) -> Color {
    const COLORS: [Color; 6] = [
        Color::Cyan,
        Color::Green,
        Color::Magenta,
        Color::Yellow,
        Color::Blue,
        Color::LightRed,
    ];
    let hash = name
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    COLORS[hash as usize % COLORS.len()]
}

fn draw(frame: &mut Frame, app: &App, input: &str, scroll: usize) {
    let [main, input_area, status_area] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let [messages_area, side_area] =
        Layout::horizontal([Constraint::Min(20), Constraint::Length(26)]).areas(main);

    // Messages of the current room, plus what belongs to no room.
    let dim = Style::default().fg(Color::DarkGray);
    let mark = Style::default()
        .fg(Color::Yellow)
        .add_modifier(Modifier::BOLD);
    let mut lines: Vec<Line> = Vec::new();
    for entry in app
        .log
        .iter()
        .filter(|e| e.room.is_none() || e.room == app.current)
    {
        let (head, style) = match &entry.kind {
            Kind::Message {
                from,
                seq,
                mention,
                quote,
            } => {
                let mut head = Vec::new();
                if *mention {
                    head.push(Span::styled("@ ", mark));
                }
                head.push(Span::styled(format!("#{seq} "), dim));
                head.push(Span::styled(
                    format!("<{from}> "),
                    Style::default()
                        .fg(color_of(from))
                        .add_modifier(Modifier::BOLD),
                ));
                if let Some(quote) = quote {
                    head.push(Span::styled(quote_text(quote), dim));
                }
                let style = match mention {
                    true => Style::default().add_modifier(Modifier::BOLD),
                    false => Style::default(),
                };
                (head, style)
            }
            Kind::Hit { room, from } => (
                vec![Span::styled(
                    match &entry.with {
                        Some(with) => format!("[@{with}] <{from}> "),
                        None => format!("[{room}] <{from}> "),
                    },
                    Style::default()
                        .fg(color_of(from))
                        .add_modifier(Modifier::BOLD),
                )],
                Style::default(),
            ),
            Kind::Notice => (vec![Span::styled("* ", dim)], dim),
            Kind::Error => (
                vec![Span::styled("! ", Style::default().fg(Color::Red))],
                Style::default().fg(Color::Red),
            ),
        };
        // A line break (LF or CRLF) starts an indented row; a lone CR is defanged.
        for (i, text) in entry.text.replace("\r\n", "\n").split('\n').enumerate() {
            let stamp = if i == 0 {
                format!("{} ", clock(entry.at_ms))
            } else {
                " ".repeat(9)
            };
            let mut spans = vec![Span::styled(stamp, dim)];
            if i == 0 {
                spans.extend(head.iter().cloned());
            }
            spans.push(Span::styled(defang(text), style));
            lines.push(Line::from(spans));
        }
    }
    let height = messages_area.height.saturating_sub(2) as usize;
    let end = lines
        .len()
        .saturating_sub(scroll.min(lines.len().saturating_sub(height)));
    let start = end.saturating_sub(height);
    let title = match &app.current {
        Some(room) => format!(" {} ", app.label(room)),
        None => " no room: /join ROOM ".to_string(),
    };
    frame.render_widget(
        Paragraph::new(lines[start..end].to_vec())
            .block(Block::default().borders(Borders::ALL).title(title)),
        messages_area,
    );

    // Rooms (current marked, unread counted, mentions of the user apart),
    // then who is online here.
    let mut side: Vec<Line> = Vec::new();
    for room in app.room_list() {
        let current = app.current.as_deref() == Some(room);
        let mut text = format!("{} {}", if current { ">" } else { " " }, app.label(room));
        let unread = app.unread(room);
        if unread > 0 {
            text.push_str(&format!(" ({unread})"));
        }
        let style = if current {
            Style::default().add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        };
        let mut spans = vec![Span::styled(text, style)];
        let mentions = app.mentions(room);
        if mentions > 0 {
            spans.push(Span::styled(format!(" @{mentions}"), mark));
        }
        side.push(Line::from(spans));
    }
    if let Some(view) = app.current.as_ref().and_then(|r| app.rooms.get(r)) {
        side.push(Line::default());
        side.push(Line::styled(format!("online ({})", view.users.len()), dim));
        for user in &view.users {
            let marker = if app.me() == Some(user.as_str()) {
                " (you)"
            } else {
                ""
            };
            side.push(Line::from(vec![
                Span::styled(format!("  {user}"), Style::default().fg(color_of(user))),
                Span::styled(marker, dim),
            ]));
        }
    }
    frame.render_widget(
        Paragraph::new(side).block(Block::default().borders(Borders::ALL).title(" rooms ")),
        side_area,
    );

    // The input line, its tail visible when it is longer than the box.
    let width = input_area.width.saturating_sub(2) as usize;
    let chars: Vec<char> = input.chars().collect();
    let visible: String = chars[chars.len().saturating_sub(width.saturating_sub(1))..]
        .iter()
        .collect();
    let prompt = if app.me().is_none() {
        " your name "
    } else {
        " message or /help "
    };
    frame.render_widget(
        Paragraph::new(visible.clone()).block(Block::default().borders(Borders::ALL).title(prompt)),
        input_area,
    );
    frame.set_cursor_position(Position::new(
        input_area.x + 1 + visible.chars().count() as u16,
        input_area.y + 1,
    ));

    // Status: connection state, name, server.
    let who = app.me().unwrap_or("(no name yet)");
    let (text, color) = match &app.link {
        Link::Idle | Link::Connecting { .. } => {
            (format!("connecting to {}", app.url), Color::Yellow)
        }
        Link::Connected => (format!("connected as {who} to {}", app.url), Color::Green),
        Link::Reconnecting { why, .. } => (
            format!(
                "{why}; reconnecting in {:.1} s",
                retry_in(&app.link).unwrap_or_default().as_secs_f64()
            ),
            Color::Yellow,
        ),
        Link::Ended { why } => (format!("disconnected: {why}"), Color::Red),
    };
    // Messages typed and not acknowledged yet (sent again after a reconnect).
    let text = match app.pending().len() {
        0 => text,
        n => format!("{text} · {n} unsent"),
    };
    // Mentions waiting in any room, the current one included.
    let text = match app.total_mentions() {
        0 => text,
        1 => format!("{text} · 1 unread mention"),
        n => format!("{text} · {n} unread mentions"),
    };
    frame.render_widget(
        Paragraph::new(Line::styled(
            format!(" ● {text}"),
            Style::default().fg(color),
        )),
        status_area,
    );
}
