//! Diagnostics: error messages with a file, a line and column, the offending
//! text underlined, and optional notes, rendered with `codespan-reporting`.

use std::fmt;
use std::io::IsTerminal;

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label};
use codespan_reporting::files::{Files, SimpleFile};
use codespan_reporting::term::{
    self,
    termcolor::{ColorChoice, NoColor, StandardStream},
};

use crate::ast::Span;

/// One error in a specification.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    message: String,
    span: Span,
    label: String,
    secondary: Vec<(Span, String)>,
    notes: Vec<String>,
    line: usize,
    column: usize,
}

impl Diagnostic {
    /// A new error at `span` with a message. Line and column are filled in
    /// when the diagnostic is added to a [`Diagnostics`].
    pub fn error(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            span,
            label: String::new(),
            secondary: Vec::new(),
            notes: Vec::new(),
            line: 0,
            column: 0,
        }
    }

    /// Sets the text printed under the underlined span.
    pub fn with_label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = label.into();
        self
    }

    /// Adds a secondary location (e.g. "first defined here").
    pub fn with_secondary(mut self, span: Span, label: impl Into<String>) -> Diagnostic {
        self.secondary.push((span, label.into()));
        self
    }

    /// Adds a note (printed as `= note: ...`); start it with `help:` for a
    /// suggestion.
    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    /// The message (the first line of the rendering).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The primary location.
    pub fn span(&self) -> Span {
        self.span
    }

    /// 1-based line of the start of the primary location.
    pub fn line(&self) -> usize {
        self.line
    }

    /// 1-based column (in characters) of the start of the primary location.
    pub fn column(&self) -> usize {
        self.column
    }

    /// The notes.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    fn to_codespan(&self) -> CsDiagnostic<()> {
        let mut labels = vec![
            Label::primary((), self.span.start..self.span.end).with_message(self.label.clone()),
        ];
        for (s, l) in &self.secondary {
            labels.push(Label::secondary((), s.start..s.end).with_message(l.clone()));
        }
        CsDiagnostic::error()
            .with_message(self.message.clone())
            .with_labels(labels)
            .with_notes(self.notes.clone())
    }
}

/// All the errors found in one specification file, with its source text so
/// they can be rendered.
#[derive(Clone)]
pub struct Diagnostics {
    file: SimpleFile<String, String>,
    items: Vec<Diagnostic>,
}

impl fmt::Debug for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::error::Error for Diagnostics {}

impl Diagnostics {
    /// An empty set of diagnostics for a file name and its text.
    pub fn new(name: impl Into<String>, source: impl Into<String>) -> Diagnostics {
        Diagnostics {
            file: SimpleFile::new(name.into(), source.into()),
            items: Vec::new(),
        }
    }

    /// Adds a diagnostic, computing its line and column.
    pub fn push(&mut self, mut d: Diagnostic) {
        let src = self.file.source();
        let start = d.span.start.min(src.len());
        let end = d.span.end.clamp(start, src.len());
        d.span = Span::new(start, end);
        let line_index = self.file.line_index((), start).unwrap_or(0);
        d.line = line_index + 1;
        d.column = self.file.column_number((), line_index, start).unwrap_or(1);
        self.items.push(d);
    }

    /// Whether there is no error.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The number of errors.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The errors, in the order found.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    /// The file name as given to the loader.
    pub fn file_name(&self) -> &str {
        self.file.name()
    }

    /// Sorts the errors by position (stable).
    pub fn sort(&mut self) {
        self.items.sort_by_key(|d| d.span.start);
    }

    /// Renders every error as plain text (no colors):
    /// `error: message`, ` --> file:line:col`, the source line with the
    /// offending text underlined, and notes.
    pub fn render(&self) -> String {
        let mut out = NoColor::new(Vec::new());
        let config = term::Config::default();
        for d in &self.items {
            // Writing into a Vec cannot fail.
            let _ = term::emit(&mut out, &config, &self.file, &d.to_codespan());
        }
        String::from_utf8_lossy(&out.into_inner()).into_owned()
    }

    /// Writes every error to standard error, with colors when it is a
    /// terminal.
    pub fn emit_to_stderr(&self) {
        let choice = if std::io::stderr().is_terminal() {
            ColorChoice::Auto
        } else {
            ColorChoice::Never
        };
        let stream = StandardStream::stderr(choice);
        let mut lock = stream.lock();
        let config = term::Config::default();
        for d in &self.items {
            let _ = term::emit(&mut lock, &config, &self.file, &d.to_codespan());
        }
    }
}
