//! Docker's word processing: variable substitution, quote removal and escapes.
//!
//! This is the lexer that BuildKit's `shell.Lex` applies to the arguments of
//! ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR and
//! to `--mount` and other flag values. RUN, CMD and ENTRYPOINT are left for
//! the shell inside the container.
//!
//! Supported forms: `$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME-word}`,
//! `${NAME:+word}`, `${NAME+word}`, `${NAME:?message}`, `${NAME?message}`;
//! single quotes are literal, double quotes allow substitution, the escape
//! character (`\` or the one set by the `escape` directive) makes the next
//! character literal.

use std::collections::BTreeMap;

/// Why a word could not be expanded. Positions are character offsets into
/// the word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("unterminated `{quote}` quote")]
    UnterminatedQuote { quote: char },
    #[error("missing `}}` in variable substitution")]
    UnterminatedBrace,
    #[error("bad substitution `{text}`")]
    BadSubstitution { text: String },
    #[error("variable `{name}` is required: {message}")]
    Required { name: String, message: String },
}

/// Variables visible to expansion. `None` for a declared ARG without value
/// behaves like an unset variable.
pub type Vars = BTreeMap<String, String>;

/// Expands one word and removes its quotes.
pub fn expand_word(word: &str, vars: &Vars, escape: char) -> Result<String, ExpandError> {
    let mut lexer = Lexer {
        chars: word.chars().collect(),
        pos: 0,
        vars,
        escape,
    };
    let words = lexer.process(false)?;
    Ok(words.concat())
}

/// Expands a string and splits it into words on unquoted whitespace, as for
/// `EXPOSE 80 443` or the shell form of `VOLUME`.
pub fn expand_words(text: &str, vars: &Vars, escape: char) -> Result<Vec<String>, ExpandError> {
    let mut lexer = Lexer {
        chars: text.chars().collect(),
        pos: 0,
        vars,
        escape,
    };
    lexer.process(true)
}

struct Lexer<'v> {
    chars: Vec<char>,
    pos: usize,
    vars: &'v Vars,
    escape: char,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += 1;
        c
    }

    /// Processes the whole input; with `split`, returns one entry per word.
    fn process(&mut self, split: bool) -> Result<Vec<String>, ExpandError> {
        let mut words = Vec::new();
        let mut current = String::new();
        // A word made only of quotes ("") is still a word.
        let mut have_word = false;
        while let Some(c) = self.peek() {
            if split && c.is_whitespace() {
                self.pos += 1;
                if have_word {
                    words.push(std::mem::take(&mut current));
                    have_word = false;
                }
                continue;
            }
            have_word = true;
            match c {
                '\'' => {
                    self.pos += 1;
                    current.push_str(&self.single_quoted()?);
                }
                '"' => {
                    self.pos += 1;
                    current.push_str(&self.double_quoted()?);
                }
                '$' => {
                    self.pos += 1;
                    current.push_str(&self.dollar()?);
                }
                c if c == self.escape => {
                    self.pos += 1;
                    match self.next() {
                        Some(n) => current.push(n),
                        // A trailing escape stays, as in BuildKit.
                        None => current.push(c),
                    }
                }
                c => {
                    self.pos += 1;
                    current.push(c);
                }
            }
        }
        if have_word || !split {
            words.push(current);
        }
        Ok(words)
    }

    fn single_quoted(&mut self) -> Result<String, ExpandError> {
        let mut out = String::new();
        loop {
            match self.next() {
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
                None => return Err(ExpandError::UnterminatedQuote { quote: '\'' }),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, ExpandError> {
        let mut out = String::new();
        loop {
            match self.next() {
                Some('"') => return Ok(out),
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) if c == self.escape => match self.peek() {
                    Some(n) if n == '"' || n == '$' || n == self.escape => {
                        self.pos += 1;
                        out.push(n);
                    }
                    _ => out.push(c),
                },
                Some(c) => out.push(c),
                None => return Err(ExpandError::UnterminatedQuote { quote: '"' }),
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    /// After a `$`.
    fn dollar(&mut self) -> Result<String, ExpandError> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                self.braced()
            }
            Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
                let name = self.name();
                Ok(self.vars.get(&name).cloned().unwrap_or_default())
            }
            _ => Ok("$".to_string()),
        }
    }

    /// After `${`.
    fn braced(&mut self) -> Result<String, ExpandError> {
        let name = self.name();
        if name.is_empty() {
            let rest: String = self.chars[self.pos..]
                .iter()
                .take_while(|c| **c != '}')
                .collect();
            return Err(ExpandError::BadSubstitution {
                text: format!("${{{rest}}}"),
            });
        }
        let value = self.vars.get(&name);
        match self.next() {
            Some('}') => Ok(value.cloned().unwrap_or_default()),
            Some(':') => {
                let op = self.next().ok_or(ExpandError::UnterminatedBrace)?;
                let word = self.modifier_word()?;
                let set = value.is_some_and(|v| !v.is_empty());
                apply_modifier(&name, op, value.filter(|_| set), word)
            }
            Some(op @ ('-' | '+' | '?')) => {
                let word = self.modifier_word()?;
                apply_modifier(&name, op, value, word)
            }
            Some(c) => Err(ExpandError::BadSubstitution {
                text: format!("${{{name}{c}"),
            }),
            None => Err(ExpandError::UnterminatedBrace),
        }
    }

    /// The word after a modifier, up to the matching `}`, itself expanded.
    fn modifier_word(&mut self) -> Result<String, ExpandError> {
        let mut out = String::new();
        loop {
            match self.next() {
                Some('}') => return Ok(out),
                Some('$') => out.push_str(&self.dollar()?),
                Some('\'') => out.push_str(&self.single_quoted()?),
                Some('"') => out.push_str(&self.double_quoted()?),
                Some(c) if c == self.escape => {
                    if let Some(n) = self.next() {
                        out.push(n);
                    }
                }
                Some(c) => out.push(c),
                None => return Err(ExpandError::UnterminatedBrace),
            }
        }
    }
}

/// `value` is `None` when the variable counts as unset for this operator.
fn apply_modifier(
    name: &str,
    op: char,
    value: Option<&String>,
    word: String,
) -> Result<String, ExpandError> {
    match (op, value) {
        ('-', Some(v)) => Ok(v.clone()),
        ('-', None) => Ok(word),
        ('+', Some(_)) => Ok(word),
        ('+', None) => Ok(String::new()),
        ('?', Some(v)) => Ok(v.clone()),
        ('?', None) => Err(ExpandError::Required {
            name: name.to_string(),
            message: word,
        }),
        (op, _) => Err(ExpandError::BadSubstitution {
            text: format!("${{{name}:{op}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        [
            ("A", "1"),
            ("EMPTY", ""),
            ("PATHV", "/usr/bin"),
            ("SP", "a b"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn ex(word: &str) -> String {
        expand_word(word, &vars(), '\\').unwrap()
    }

    #[test]
    fn plain_and_braced_variables() {
        assert_eq!(ex("$A"), "1");
        assert_eq!(ex("${A}"), "1");
        assert_eq!(ex("x${A}y"), "x1y");
        assert_eq!(ex("$Ax"), "");
        assert_eq!(ex("$UNSET"), "");
        assert_eq!(ex("${PATHV}:/bin"), "/usr/bin:/bin");
    }

    #[test]
    fn default_and_alternative_values() {
        assert_eq!(ex("${UNSET:-def}"), "def");
        assert_eq!(ex("${EMPTY:-def}"), "def");
        assert_eq!(ex("${EMPTY-def}"), "");
        assert_eq!(ex("${UNSET-def}"), "def");
        assert_eq!(ex("${A:-def}"), "1");
        assert_eq!(ex("${A:+alt}"), "alt");
        assert_eq!(ex("${EMPTY:+alt}"), "");
        assert_eq!(ex("${EMPTY+alt}"), "alt");
        assert_eq!(ex("${UNSET:+alt}"), "");
        assert_eq!(ex("${UNSET:-$A}"), "1");
        assert_eq!(ex("${UNSET:-${A:+nested}}"), "nested");
    }

    #[test]
    fn required_variables_fail_with_their_message() {
        let err = expand_word("${UNSET:?must be set}", &vars(), '\\').unwrap_err();
        assert_eq!(
            err,
            ExpandError::Required {
                name: "UNSET".into(),
                message: "must be set".into()
            }
        );
        assert_eq!(ex("${A:?x}"), "1");
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(ex("'$A'"), "$A");
        assert_eq!(ex("\"$A\""), "1");
        assert_eq!(ex("\\$A"), "$A");
        assert_eq!(ex("\"\\$A\""), "$A");
        assert_eq!(ex("\"a\\b\""), "a\\b");
        assert_eq!(ex("a\\ b"), "a b");
        assert_eq!(ex("$"), "$");
        assert_eq!(ex("a$ b"), "a$ b");
        assert_eq!(expand_word("`$A", &vars(), '`').unwrap(), "$A");
        assert_eq!(expand_word("C:\\dir", &vars(), '`').unwrap(), "C:\\dir");
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(
            expand_word("'abc", &vars(), '\\').unwrap_err(),
            ExpandError::UnterminatedQuote { quote: '\'' }
        );
        assert_eq!(
            expand_word("${A", &vars(), '\\').unwrap_err(),
            ExpandError::UnterminatedBrace
        );
        assert!(matches!(
            expand_word("${}", &vars(), '\\').unwrap_err(),
            ExpandError::BadSubstitution { .. }
        ));
        assert!(matches!(
            expand_word("${A:x}", &vars(), '\\').unwrap_err(),
            ExpandError::BadSubstitution { .. }
        ));
    }

    #[test]
    fn splitting_keeps_quoted_whitespace() {
        let w = expand_words("80/tcp  \"a b\" x$A ''", &vars(), '\\').unwrap();
        assert_eq!(w, ["80/tcp", "a b", "x1", ""]);
    }
}
