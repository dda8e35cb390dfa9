//! Reads a Locust project's config.py as data: top-level `NAME = literal` assignments, where a
//! literal is a string (' " ''' """, escapes, r/u prefixes, adjacent ones joined), an integer,
//! a float, True/False/None, or a list, tuple or dict of literals spanning any number of lines,
//! with comments and trailing commas. Python is never run: anything else (imports, calls,
//! arithmetic, f-strings) is reported as a statement that was not read.
//!
//! Bounds: nesting deeper than [`MAX_DEPTH`] is an error, not a stack overflow; tokens are
//! lexed as the parser asks for them (never a list of every token of the file), and more than
//! [`MAX_VALUES`] values in a file is an error, so memory is the values read and their text;
//! the caller bounds the file size. Line ends are Python's: LF, CRLF and a lone CR. Errors
//! name the line.

use std::collections::VecDeque;
use std::fmt;

/// Deepest nesting of lists, tuples and dicts read; a config.py nests two or three deep.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    None,
    List(Vec<PyValue>),
    Tuple(Vec<PyValue>),
    Dict(Vec<(PyValue, PyValue)>),
}

/// One top-level statement of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// Line where the statement starts.
    pub line: usize,
    pub kind: StatementKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StatementKind {
    /// `name = literal`.
    Assign { name: String, value: PyValue },
    /// Anything else, with why it was not read: `import json`, `x = os.environ["X"]`.
    Other { what: String, why: String },
}

/// Text that cannot be read as Python at all (an unterminated string, an unclosed bracket,
/// nesting past [`MAX_DEPTH`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LiteralError {
    pub line: usize,
    pub problem: String,
}

impl fmt::Display for LiteralError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    /// The text, and whether it is a literal we read (f-strings and bytes are not).
    Str(String, bool),
    Number(String),
    Op(char),
    Newline,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
    /// First token of a logical line that starts with whitespace (a block's body).
    indented: bool,
}

/// Every top-level statement of `text`, in order.
///
/// Memory: tokens are read one statement part at a time as the parser asks for them (a few
/// of lookahead), never all at once, so what stays is the values read: at most
/// [`MAX_VALUES`] of them, and their strings, no longer than the text.
pub fn parse_module(text: &str) -> Result<Vec<Statement>, LiteralError> {
    let text = python_line_ends(text);
    let mut lexer = Lexer::new(&text);
    let mut statements = Vec::new();
    let mut values = 0usize;
    loop {
        let mut stream = Stream {
            lexer: &mut lexer,
            ahead: VecDeque::new(),
        };
        let Some(first) = stream.token(0)? else {
            if stream.at_end_of_file()? {
                break;
            }
            stream.skip_statement()?;
            continue;
        };
        let (line, indented) = (first.line, first.indented);
        if indented {
            stream.skip_statement()?; // the body of a def/if/class reported with its header
            continue;
        }
        let kind = statement(&mut stream, &mut values)?;
        stream.skip_statement()?;
        statements.push(Statement { line, kind });
    }
    Ok(statements)
}

/// Most values (strings, numbers, and each list, tuple and dict) read from one file: a
/// config.py of 20,000 device tokens has 20,001. Bounds the parser's memory whatever the text.
pub const MAX_VALUES: usize = 2_000_000;

/// Python's line ends: a byte-order mark dropped, CRLF and a lone CR read as LF (Python reads
/// source with universal newlines), in one copy.
fn python_line_ends(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\r') {
        out.push_str(&rest[..at]);
        out.push('\n');
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('\n') {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// One statement's tokens, lexed as they are asked for; it ends at the statement's newline.
struct Stream<'l, 'a> {
    lexer: &'l mut Lexer<'a>,
    /// Tokens lexed but not yet consumed (a few: lookahead).
    ahead: VecDeque<Token>,
}

impl Stream<'_, '_> {
    /// The statement's token `i` places ahead; None at its end (newline or end of file).
    fn token(&mut self, i: usize) -> Result<Option<&Token>, LiteralError> {
        // A newline, when lexed, is the last token ahead: nothing past it is read.
        while self.ahead.len() <= i && self.ahead.back().is_none_or(|t| t.tok != Tok::Newline) {
            match self.lexer.next_token()? {
                Some(token) => self.ahead.push_back(token),
                None => break,
            }
        }
        Ok(self
            .ahead
            .iter()
            .take_while(|t| t.tok != Tok::Newline)
            .nth(i))
    }

    fn peek(&mut self) -> Result<Option<&Tok>, LiteralError> {
        Ok(self.token(0)?.map(|t| &t.tok))
    }

    /// Consumes the next token of the statement (None at its end).
    fn next(&mut self) -> Result<Option<Token>, LiteralError> {
        if self.token(0)?.is_none() {
            return Ok(None);
        }
        Ok(self.ahead.pop_front())
    }

    fn line(&mut self) -> usize {
        match self.token(0) {
            Ok(Some(t)) => t.line,
            _ => self.lexer.line,
        }
    }

    /// True when nothing is left in the file.
    fn at_end_of_file(&mut self) -> Result<bool, LiteralError> {
        if !self.ahead.is_empty() {
            return Ok(false);
        }
        match self.lexer.next_token()? {
            Some(token) => {
                self.ahead.push_back(token);
                Ok(false)
            }
            None => Ok(true),
        }
    }

    /// Drops the rest of the statement and its newline.
    fn skip_statement(&mut self) -> Result<(), LiteralError> {
        while let Some(token) = self.ahead.pop_front() {
            if token.tok == Tok::Newline {
                return Ok(());
            }
        }
        while let Some(token) = self.lexer.next_token()? {
            if token.tok == Tok::Newline {
                return Ok(());
            }
        }
        Ok(())
    }
}

fn statement(stream: &mut Stream, values: &mut usize) -> Result<StatementKind, LiteralError> {
    let what = describe(stream)?;
    let not_read = |why: &str| StatementKind::Other {
        what: what.clone(),
        why: why.to_string(),
    };
    let name = match (
        stream.token(0)?.map(|t| t.tok.clone()),
        stream.token(1)?.map(|t| t.tok.clone()),
        stream.token(2)?.map(|t| t.tok.clone()),
    ) {
        (Some(Tok::Name(name)), Some(Tok::Op('=')), third) if third != Some(Tok::Op('=')) => name,
        _ => return Ok(not_read("not an assignment")),
    };
    stream.next()?;
    stream.next()?;
    let mut parser = Parser { stream, values };
    match parser.value(0) {
        Ok(value) => match parser.stream.peek()? {
            None => Ok(StatementKind::Assign { name, value }),
            Some(_) => Ok(not_read("the value is not a plain literal")),
        },
        Err(Refusal::NotLiteral) => Ok(not_read("the value is not a plain literal")),
        Err(Refusal::Fatal(err)) => Err(err),
    }
}

/// The statement's start, for messages: `import json`, `x = os.environ[...`.
fn describe(stream: &mut Stream) -> Result<String, LiteralError> {
    let mut text = String::new();
    for i in 0..6 {
        let Some(token) = stream.token(i)? else {
            return Ok(text);
        };
        let piece = match &token.tok {
            Tok::Name(name) | Tok::Number(name) => super::shown(name),
            Tok::Str(..) => "'...'".to_string(),
            Tok::Op(op) => op.to_string(),
            Tok::Newline => break,
        };
        if !text.is_empty() && !matches!(&token.tok, Tok::Op('.' | '(' | '[' | ')' | ']' | ',')) {
            text.push(' ');
        }
        text.push_str(&piece);
    }
    if stream.token(6)?.is_some() {
        text.push_str(" ...");
    }
    Ok(text)
}

enum Refusal {
    /// A valid statement whose value is not a literal: reported, not fatal.
    NotLiteral,
    Fatal(LiteralError),
}

impl From<LiteralError> for Refusal {
    fn from(err: LiteralError) -> Refusal {
        Refusal::Fatal(err)
    }
}

struct Parser<'s, 'l, 'a> {
    stream: &'s mut Stream<'l, 'a>,
    /// Values read from the file so far, against [`MAX_VALUES`].
    values: &'s mut usize,
}

impl Parser<'_, '_, '_> {
    fn peek(&mut self) -> Result<Option<&Tok>, Refusal> {
        Ok(self.stream.peek()?)
    }

    fn next(&mut self) -> Result<Option<Tok>, Refusal> {
        Ok(self.stream.next()?.map(|t| t.tok))
    }

    fn value(&mut self, depth: usize) -> Result<PyValue, Refusal> {
        if depth > MAX_DEPTH {
            let line = self.stream.line();
            return Err(Refusal::Fatal(LiteralError {
                line,
                problem: format!("nested deeper than {MAX_DEPTH} levels"),
            }));
        }
        *self.values += 1;
        if *self.values > MAX_VALUES {
            let line = self.stream.line();
            return Err(Refusal::Fatal(LiteralError {
                line,
                problem: format!(
                    "more than {MAX_VALUES} values in the file, more than a config.py is read with"
                ),
            }));
        }
        match self.next()?.ok_or(Refusal::NotLiteral)? {
            Tok::Str(text, true) => self.more_strings(text),
            Tok::Number(text) => number(&text, false),
            Tok::Op('-') => match self.next()? {
                Some(Tok::Number(text)) => number(&text, true),
                _ => Err(Refusal::NotLiteral),
            },
            Tok::Op('+') => match self.next()? {
                Some(Tok::Number(text)) => number(&text, false),
                _ => Err(Refusal::NotLiteral),
            },
            Tok::Name(name) => match name.as_str() {
                "True" => Ok(PyValue::Bool(true)),
                "False" => Ok(PyValue::Bool(false)),
                "None" => Ok(PyValue::None),
                _ => Err(Refusal::NotLiteral),
            },
            Tok::Op('[') => self
                .items(']', depth)
                .map(|(items, _)| PyValue::List(items)),
            Tok::Op('(') => match self.items(')', depth)? {
                (mut items, false) if items.len() == 1 => Ok(items.remove(0)),
                (items, _) => Ok(PyValue::Tuple(items)),
            },
            Tok::Op('{') => self.dict(depth),
            _ => Err(Refusal::NotLiteral),
        }
    }

    /// Adjacent string literals are one string, as in Python.
    fn more_strings(&mut self, mut text: String) -> Result<PyValue, Refusal> {
        while let Some(Tok::Str(_, readable)) = self.peek()? {
            if !readable {
                return Err(Refusal::NotLiteral);
            }
            if let Some(Tok::Str(more, _)) = self.next()? {
                text.push_str(&more);
            }
        }
        Ok(PyValue::Str(text))
    }

    /// Comma-separated values up to `close`; also whether a comma was seen (`(1,)`).
    fn items(&mut self, close: char, depth: usize) -> Result<(Vec<PyValue>, bool), Refusal> {
        let mut items = Vec::new();
        let mut comma = false;
        loop {
            if self.peek()? == Some(&Tok::Op(close)) {
                self.next()?;
                return Ok((items, comma));
            }
            items.push(self.value(depth + 1)?);
            match self.next()? {
                Some(Tok::Op(',')) => comma = true,
                Some(Tok::Op(c)) if c == close => return Ok((items, comma)),
                _ => return Err(Refusal::NotLiteral),
            }
        }
    }

    fn dict(&mut self, depth: usize) -> Result<PyValue, Refusal> {
        let mut pairs = Vec::new();
        loop {
            if self.peek()? == Some(&Tok::Op('}')) {
                self.next()?;
                return Ok(PyValue::Dict(pairs));
            }
            let key = self.value(depth + 1)?;
            if self.next()? != Some(Tok::Op(':')) {
                return Err(Refusal::NotLiteral); // a set, or a comprehension
            }
            pairs.push((key, self.value(depth + 1)?));
            match self.next()? {
                Some(Tok::Op(',')) => {}
                Some(Tok::Op('}')) => return Ok(PyValue::Dict(pairs)),
                _ => return Err(Refusal::NotLiteral),
            }
        }
    }
}

/// `10_000`, `0x1F`, `1.5e3`, with the sign read before it.
fn number(text: &str, negative: bool) -> Result<PyValue, Refusal> {
    let digits: String = text.chars().filter(|&c| c != '_').collect();
    let lower = digits.to_ascii_lowercase();
    let radix = match lower.get(..2) {
        Some("0x") => Some(16),
        Some("0o") => Some(8),
        Some("0b") => Some(2),
        _ => None,
    };
    let int = match radix {
        Some(radix) => i64::from_str_radix(&lower[2..], radix).ok(),
        None => lower.parse::<i64>().ok(),
    };
    if let Some(n) = int {
        return Ok(PyValue::Int(if negative { -n } else { n }));
    }
    match (radix, lower.parse::<f64>()) {
        (None, Ok(x)) if x.is_finite() && !lower.contains("inf") && !lower.contains("nan") => {
            Ok(PyValue::Float(if negative { -x } else { x }))
        }
        _ => Err(Refusal::NotLiteral),
    }
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    /// Open brackets with the line each was opened on; inside them newlines are spaces.
    open: Vec<(char, usize)>,
    /// Tokens lexed from the last character(s), not yet handed out (one or two).
    pending: VecDeque<Token>,
    at_line_start: bool,
    indented: bool,
    done: bool,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Lexer<'a> {
        Lexer {
            chars: text.chars().peekable(),
            line: 1,
            open: Vec::new(),
            pending: VecDeque::new(),
            at_line_start: true,
            indented: false,
            done: false,
        }
    }

    fn push(&mut self, tok: Tok, line: usize) {
        let indented = self.at_line_start && self.indented;
        self.at_line_start = false;
        self.pending.push_back(Token {
            tok,
            line,
            indented,
        });
    }

    fn end_line(&mut self) {
        if self.open.is_empty() {
            if !self.at_line_start {
                self.pending.push_back(Token {
                    tok: Tok::Newline,
                    line: self.line,
                    indented: false,
                });
            }
            self.at_line_start = true;
            self.indented = false;
        }
    }

    fn fail<T>(&self, line: usize, problem: impl Into<String>) -> Result<T, LiteralError> {
        Err(LiteralError {
            line,
            problem: problem.into(),
        })
    }

    /// The next token; None at the end of the text (after its last newline).
    fn next_token(&mut self) -> Result<Option<Token>, LiteralError> {
        loop {
            if let Some(token) = self.pending.pop_front() {
                return Ok(Some(token));
            }
            if self.done {
                return Ok(None);
            }
            self.step()?;
        }
    }

    /// Reads one character (and what it starts: a string, a name, a number).
    fn step(&mut self) -> Result<(), LiteralError> {
        let Some(c) = self.chars.next() else {
            if let Some((bracket, line)) = self.open.last() {
                return self.fail(*line, format!("'{bracket}' is never closed"));
            }
            self.end_line();
            self.done = true;
            return Ok(());
        };
        match c {
            '\n' => {
                self.end_line();
                self.line += 1;
            }
            ' ' | '\t' | '\r' | '\x0c' => {
                if self.at_line_start && self.open.is_empty() {
                    self.indented = true;
                }
            }
            '#' => while self.chars.next_if(|&c| c != '\n').is_some() {},
            '\\' if self.chars.peek() == Some(&'\n') => {
                self.chars.next();
                self.line += 1;
            }
            ';' => self.end_line(),
            '\'' | '"' => self.string(c, String::new())?,
            c if c.is_ascii_digit()
                || (c == '.' && self.chars.peek().is_some_and(|d| d.is_ascii_digit())) =>
            {
                self.number(c)
            }
            c if c.is_alphabetic() || c == '_' => self.name(c)?,
            '(' | '[' | '{' => {
                self.push(Tok::Op(c), self.line);
                self.open.push((c, self.line));
            }
            ')' | ']' | '}' => {
                self.open.pop();
                self.push(Tok::Op(c), self.line);
            }
            c => self.push(Tok::Op(c), self.line),
        }
        Ok(())
    }

    fn name(&mut self, first: char) -> Result<(), LiteralError> {
        let mut name = String::from(first);
        while let Some(c) = self.chars.next_if(|&c| c.is_alphanumeric() || c == '_') {
            name.push(c);
        }
        let is_prefix = name.len() <= 2
            && name
                .chars()
                .all(|c| matches!(c.to_ascii_lowercase(), 'r' | 'b' | 'u' | 'f'));
        match self.chars.peek() {
            Some(&quote @ ('\'' | '"')) if is_prefix => {
                self.chars.next();
                self.string(quote, name)
            }
            _ => {
                self.push(Tok::Name(name), self.line);
                Ok(())
            }
        }
    }

    fn number(&mut self, first: char) {
        let mut text = String::from(first);
        while let Some(c) = self
            .chars
            .next_if(|&c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            text.push(c);
            let exponent =
                matches!(c, 'e' | 'E') && !text.starts_with("0x") && !text.starts_with("0X");
            if exponent {
                if let Some(sign) = self.chars.next_if(|&c| c == '+' || c == '-') {
                    text.push(sign);
                }
            }
        }
        self.push(Tok::Number(text), self.line);
    }

    /// A string after its opening quote; `prefix` as written (`r`, `b`, `f`, `u`, ...).
    fn string(&mut self, quote: char, prefix: String) -> Result<(), LiteralError> {
        let start_line = self.line;
        let prefix = prefix.to_ascii_lowercase();
        let raw = prefix.contains('r');
        let readable = !prefix.contains('f') && !prefix.contains('b');
        let triple = if self.chars.peek() == Some(&quote) {
            self.chars.next();
            if self.chars.next_if_eq(&quote).is_none() {
                self.push(Tok::Str(String::new(), readable), start_line); // ''
                return Ok(());
            }
            true
        } else {
            false
        };
        let mut text = String::new();
        loop {
            let Some(c) = self.chars.next() else {
                return self.fail(start_line, "unterminated string");
            };
            match c {
                '\n' if !triple => return self.fail(start_line, "unterminated string"),
                '\n' => {
                    self.line += 1;
                    text.push('\n');
                }
                c if c == quote && !triple => break,
                c if c == quote => {
                    if self.chars.next_if_eq(&quote).is_some() {
                        if self.chars.next_if_eq(&quote).is_some() {
                            break;
                        }
                        text.push(quote);
                    }
                    text.push(quote);
                }
                '\\' => self.escape(raw, &mut text)?,
                c => text.push(c),
            }
        }
        self.push(Tok::Str(text, readable), start_line);
        Ok(())
    }

    /// After a backslash in a string.
    fn escape(&mut self, raw: bool, text: &mut String) -> Result<(), LiteralError> {
        let Some(c) = self.chars.next() else {
            return self.fail(self.line, "unterminated string");
        };
        if c == '\n' {
            self.line += 1;
        }
        if raw {
            text.push('\\');
            text.push(c);
            return Ok(());
        }
        let simple = match c {
            '\n' => return Ok(()),
            '\\' => '\\',
            '\'' => '\'',
            '"' => '"',
            'a' => '\x07',
            'b' => '\x08',
            'f' => '\x0c',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\x0b',
            'x' => return self.code_point(2, text),
            'u' => return self.code_point(4, text),
            'U' => return self.code_point(8, text),
            '0'..='7' => {
                let mut value = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.chars.next_if(|d| d.is_digit(8)) {
                        Some(d) => value = value * 8 + d.to_digit(8).unwrap_or(0),
                        None => break,
                    }
                }
                char::from_u32(value).unwrap_or('\u{fffd}')
            }
            other => {
                text.push('\\'); // Python keeps unknown escapes as written
                other
            }
        };
        text.push(simple);
        Ok(())
    }

    fn code_point(&mut self, digits: usize, text: &mut String) -> Result<(), LiteralError> {
        let mut hex = String::new();
        for _ in 0..digits {
            match self.chars.next_if(|c| c.is_ascii_hexdigit()) {
                Some(c) => hex.push(c),
                None => {
                    return self.fail(
                        self.line,
                        format!("\\x, \\u or \\U escape needs {digits} hex digits"),
                    )
                }
            }
        }
        match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
            Some(c) => {
                text.push(c);
                Ok(())
            }
            None => self.fail(self.line, format!("escape \\{hex} is not a character")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assigns(text: &str) -> Vec<(usize, String, PyValue)> {
        parse_module(text)
            .unwrap()
            .into_iter()
            .filter_map(|s| match s.kind {
                StatementKind::Assign { name, value } => Some((s.line, name, value)),
                StatementKind::Other { .. } => None,
            })
            .collect()
    }

    fn s(text: &str) -> PyValue {
        PyValue::Str(text.to_string())
    }

    #[test]
    fn reads_the_literals_of_a_locust_config_py() {
        let text = r#"# ThingsBoard
tb_address = "tb.example.com"  # the broker
tb_port = 1_883
mqtt_qos = 1
ratio = -2.5e1
REQUEST_TYPE = 'MQTT'
flags = (True, False, None)
single = (1,)
grouped = (7)
device_tokens = [
    "A1",  # first
    'B2',
    "C" "3",
]
meta = {"a": [1, 2], 'b': {}}
"#;
        let found = assigns(text);
        assert_eq!(found[0], (2, "tb_address".into(), s("tb.example.com")));
        assert_eq!(found[1].2, PyValue::Int(1883));
        assert_eq!(found[3].2, PyValue::Float(-25.0));
        assert_eq!(found[4].2, s("MQTT"));
        assert_eq!(
            found[5].2,
            PyValue::Tuple(vec![
                PyValue::Bool(true),
                PyValue::Bool(false),
                PyValue::None
            ])
        );
        assert_eq!(found[6].2, PyValue::Tuple(vec![PyValue::Int(1)]));
        assert_eq!(found[7].2, PyValue::Int(7));
        assert_eq!(
            found[8],
            (
                10,
                "device_tokens".into(),
                PyValue::List(vec![s("A1"), s("B2"), s("C3")])
            )
        );
        assert_eq!(found[9].0, 15);
    }

    #[test]
    fn string_escapes_and_prefixes_are_read_as_python_does() {
        let text = "a = 'it\\'s\\n\\x41\\u00e9\\101'\nb = r'\\d+'\nc = \"\"\"two\nlines\"\"\"\nd = ''\ne = u\"x\"\n";
        let found = assigns(text);
        assert_eq!(found[0].2, s("it's\nAéA"));
        assert_eq!(found[1].2, s("\\d+"));
        assert_eq!(found[2].2, s("two\nlines"));
        assert_eq!(found[3].2, s(""));
        assert_eq!(found[4], (6, "e".into(), s("x")));
    }

    #[test]
    fn code_is_reported_as_not_read_never_run() {
        let text =
            "import os\nx = os.environ['X']\ny = f'{x}'\nz = 1 + 2\ndef f():\n    w = 3\nok = 4\n";
        let statements = parse_module(text).unwrap();
        let others: Vec<usize> = statements
            .iter()
            .filter(|s| matches!(s.kind, StatementKind::Other { .. }))
            .map(|s| s.line)
            .collect();
        assert_eq!(others, vec![1, 2, 3, 4, 5]);
        assert_eq!(assigns(text), vec![(7, "ok".into(), PyValue::Int(4))]);
    }

    #[test]
    fn a_windows_file_with_a_byte_order_mark_and_crlf_reads_the_same() {
        let text = "\u{feff}tb_address = 'tb'\r\ntokens = [\r\n  'a', \\\r\n  'b',\r\n]\r\n";
        let found = assigns(text);
        assert_eq!(found[0], (1, "tb_address".into(), s("tb")));
        assert_eq!(
            found[1],
            (2, "tokens".into(), PyValue::List(vec![s("a"), s("b")]))
        );
    }

    #[test]
    fn a_lone_cr_ends_a_line_as_in_python() {
        let text = "tb_address = 'tb'\rtokens = ['a',\r  'b']\rmqtt_qos = 1\r";
        let found = assigns(text);
        assert_eq!(found[0], (1, "tb_address".into(), s("tb")));
        assert_eq!(
            found[1],
            (2, "tokens".into(), PyValue::List(vec![s("a"), s("b")]))
        );
        assert_eq!(found[2], (4, "mqtt_qos".into(), PyValue::Int(1)));
        // A CR never ends up inside a one-line string: the string is unterminated there.
        let err = parse_module("token = 'a\rb'\r").unwrap_err();
        assert!(err.problem.contains("unterminated string"), "{err}");
    }

    #[test]
    fn a_file_of_more_values_than_max_values_is_an_error_not_gigabytes() {
        let mut text = String::from("x = [");
        for _ in 0..MAX_VALUES {
            text.push_str("0,");
        }
        text.push_str("]\n");
        let err = parse_module(&text).unwrap_err();
        assert!(err.problem.contains("more than 2000000 values"), "{err}");
        assert_eq!(err.line, 1);
        let fine = format!("x = [{}]\n", "0,".repeat(MAX_VALUES - 1));
        assert!(parse_module(&fine).is_ok());
    }

    #[test]
    fn a_statement_not_read_is_described_without_echoing_a_huge_name() {
        let text = format!("{} = os.environ['X']\n", "n".repeat(10_000));
        let statements = parse_module(&text).unwrap();
        let StatementKind::Other { what, .. } = &statements[0].kind else {
            panic!("{statements:?}");
        };
        assert!(what.len() < 200 && what.contains("(10000 bytes)"), "{what}");
    }

    #[test]
    fn an_unterminated_string_is_an_error_naming_its_line() {
        for text in [
            "a = 1\nb = 'open\n",
            "a = \"\"\"never closed\n\n",
            "a = 'x\\",
        ] {
            let err = parse_module(text).unwrap_err();
            assert!(err.problem.contains("unterminated string"), "{err}");
        }
        assert_eq!(parse_module("a = 1\nb = 'open\n").unwrap_err().line, 2);
    }

    #[test]
    fn an_unclosed_bracket_is_an_error_naming_where_it_opened() {
        let err = parse_module("x = 1\ntokens = [\n 'a',\n").unwrap_err();
        assert_eq!(err.line, 2);
    }

    #[test]
    fn huge_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("x = {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let err = parse_module(&deep).unwrap_err();
        assert!(err.problem.contains("nested deeper"), "{err}");
        let fine = format!("x = {}{}\n", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(parse_module(&fine).is_ok());
    }

    #[test]
    fn hostile_input_never_panics() {
        let samples = [
            "",
            "=",
            "x =",
            "x = -",
            "x = [1,,2]",
            "x = {1}",
            "x = 0x",
            "x = 1e",
            "x = 99999999999999999999",
            "x = '\\x4'",
            "x = '\\U0011ffff'",
            "x = ((((",
            "))))",
            "x = b'bytes'",
            "\\",
            "x = \"\\",
            "\u{feff}x = 1",
            "x = 'é' 'ü'",
            "x = 1.2.3",
            "x: int = 3",
            "x += 1",
            "x == 1",
            "a = b = 1",
        ];
        for text in samples {
            let _ = parse_module(text);
        }
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet: Vec<char> = "ab=[](){}:,'\"\\#\n 0x1.e-+_rfTNu".chars().collect();
        for _ in 0..2_000 {
            let text: String = (0..40)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            let _ = parse_module(&text);
        }
    }
}
