//! Plain line mode: each stdin line is a message or a slash command; each
//! event is printed as one line (`HH:MM:SS [room] <alice> hi`), flushed at
//! once. The end of stdin means `/quit` (which waits for uploads under way).

use std::io::Write;

use hubbub_client::Line;
use tokio::io::{AsyncBufRead, Lines};
use tokio::sync::mpsc;

use crate::app::{clock, App};
use crate::net::{NetEvent, Request};

pub async fn run<R: AsyncBufRead + Unpin>(
    mut app: App,
    mut stdin: Lines<R>,
    requests: mpsc::UnboundedSender<Request>,
    mut events: mpsc::UnboundedReceiver<NetEvent>,
) -> std::io::Result<()> {
    let mut reading = true;
    loop {
        let (sends, lines) = tokio::select! {
            line = stdin.next_line(), if reading => match line {
                Ok(Some(line)) => app.on_input(&line),
                // The end of input (or unreadable input) is a quit, once
                // the uploads under way are done.
                Ok(None) | Err(_) => {
                    reading = false;
                    app.on_input("/quit")
                }
            },
            event = events.recv() => match event {
                Some(event) => app.on_net(event),
                None => return Ok(()),
            },
        };
        for request in sends {
            let _ = requests.send(request);
        }
        print(&lines)?;
        if app.done {
            return Ok(());
        }
    }
}

/// Prints lines as the TCP gateway does, in local time.
fn print(lines: &[Line]) -> std::io::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{}", line.to_terminal(&clock(line.at_ms)))?;
    }
    out.flush()
}
