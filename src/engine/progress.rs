//! One line per step: what runs, its output, how long it took or CACHED.

use std::io::{IsTerminal, Write};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// Plain lines with colour when stderr is a terminal (NO_COLOR respected).
    Tty,
    Plain,
    Quiet,
}

/// Where progress goes (stderr) and how it looks.
#[derive(Debug, Clone)]
pub struct Progress {
    mode: ProgressMode,
    color: bool,
    /// Printed before every line (the target, in a family build).
    prefix: String,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Progress {
        let color = mode == ProgressMode::Tty
            && std::io::stderr().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Progress {
            mode,
            color,
            prefix: String::new(),
        }
    }

    /// The same, with every line prefixed (`[python] …`).
    pub fn with_prefix(&self, prefix: &str) -> Progress {
        Progress {
            prefix: format!("{prefix} "),
            ..self.clone()
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn line(&self, text: &str) {
        if self.mode != ProgressMode::Quiet {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{}{text}", self.prefix);
        }
    }

    pub fn stage(&self, label: &str, base: &str) {
        self.line(&self.paint("1", &format!("[{label}] FROM {base}")));
    }

    pub fn cached(&self, id: &str, what: &str) {
        self.line(&format!(
            "{} {} {}",
            self.paint("36", id),
            first_line(what),
            self.paint("34", "CACHED")
        ));
    }

    pub fn config(&self, id: &str, what: &str) {
        self.line(&format!("{} {}", self.paint("36", id), first_line(what)));
    }

    pub fn start(&self, id: &str, what: &str) {
        self.line(&format!("{} {}", self.paint("36", id), first_line(what)));
    }

    pub fn output(&self, id: &str, text: &str) {
        self.line(&format!("{} {}", self.paint("2", id), text));
    }

    pub fn done(&self, id: &str, what: &str, took: Duration) {
        self.line(&format!(
            "{} {} {}",
            self.paint("36", id),
            first_line(what),
            self.paint("32", &format!("DONE {:.1}s", took.as_secs_f64()))
        ));
    }

    pub fn note(&self, text: &str) {
        self.line(text);
    }
}

/// The first line of an instruction, shortened for a progress line.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    let more = text.lines().nth(1).is_some();
    let mut out: String = line.chars().take(100).collect();
    if more || line.chars().count() > 100 {
        out.push_str(" …");
    }
    out
}
