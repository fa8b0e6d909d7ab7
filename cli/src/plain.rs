//! Plain line mode: each stdin line is a message or a slash command; each
//! event is printed as one line (`HH:MM:SS [room] <alice> hi`), flushed at
//! once. The end of stdin means `/quit`.

use std::io::Write;

use hubbub_protocol::ClientMsg;
use tokio::io::{AsyncBufRead, Lines};
use tokio::sync::mpsc;

use crate::app::{App, Entry};
use crate::net::NetEvent;

pub async fn run<R: AsyncBufRead + Unpin>(
    mut app: App,
    mut stdin: Lines<R>,
    requests: mpsc::UnboundedSender<ClientMsg>,
    mut events: mpsc::UnboundedReceiver<NetEvent>,
) -> std::io::Result<()> {
    let mut reading = true;
    loop {
        let entries = tokio::select! {
            line = stdin.next_line(), if reading => match line {
                Ok(Some(line)) => {
                    let (sends, entries) = app.on_input(&line);
                    for request in sends {
                        let _ = requests.send(request);
                    }
                    entries
                }
                // The end of input (or unreadable input) is a quit.
                Ok(None) | Err(_) => {
                    reading = false;
                    let _ = requests.send(ClientMsg::Quit);
                    Vec::new()
                }
            },
            event = events.recv() => match event {
                Some(event) => app.on_net(event),
                None => return Ok(()),
            },
        };
        print(&app, &entries)?;
        if app.done {
            return Ok(());
        }
    }
}

fn print(app: &App, entries: &[Entry]) -> std::io::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for entry in entries {
        writeln!(out, "{}", entry.plain(app.me.as_deref()))?;
    }
    out.flush()
}
