//! Standard error shared by the progress bars and the log lines.
//!
//! A progress bar redraws its line in place; a log line written to stderr while the bar is
//! drawn lands in the middle of it and the next redraw overwrites it. So the command that
//! draws a bar registers it here ([`BarGuard`]), and the log writer ([`LogWriter`], what
//! `main` hands to `tracing-subscriber`) writes each event through
//! [`indicatif::ProgressBar::suspend`]: the bar is cleared, the line printed, the bar drawn
//! again below it. Without a bar (logs, pipes, CI) lines go straight to stderr.

use std::io::Write;
use std::sync::Mutex;

/// The bar drawn on stderr now, if any.
static ACTIVE: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// Keeps `bar` registered as the bar on stderr until dropped ([`show`]).
#[derive(Debug)]
pub struct BarGuard(());

/// Registers `bar` as the one drawn on stderr, so that log lines print above it, until the
/// guard is dropped. One bar at a time: a second registration replaces the first.
pub fn show(bar: &indicatif::ProgressBar) -> BarGuard {
    *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
    BarGuard(())
}

impl Drop for BarGuard {
    fn drop(&mut self) {
        ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// One log event's bytes, written to stderr (through the registered bar) when dropped: the
/// `tracing-subscriber` formatter makes one writer per event, so an event is never split
/// around a redraw.
#[derive(Debug, Default)]
pub struct LogWriter {
    buf: Vec<u8>,
}

impl LogWriter {
    /// A writer for one event (`tracing_subscriber::fmt().with_writer(LogWriter::new)`).
    pub fn new() -> Self {
        Self::default()
    }
}

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let bar = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // A log line that cannot be written has nowhere else to go: dropped.
        let write = || {
            let _ = std::io::stderr().lock().write_all(&self.buf);
        };
        match bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_is_registered_until_its_guard_drops_and_writing_under_it_returns() {
        let bar = indicatif::ProgressBar::hidden();
        {
            let _guard = show(&bar);
            assert!(ACTIVE.lock().unwrap().is_some());
            // Written through the (hidden) bar's suspend: must not deadlock on the lock.
            let mut w = LogWriter::new();
            w.write_all(b"\n").unwrap();
            drop(w);
        }
        assert!(ACTIVE.lock().unwrap().is_none());
    }
}
