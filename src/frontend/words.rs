//! Splitting of `KEY=value` lists (ENV, LABEL, ARG) before expansion.

/// Splits on unquoted whitespace, keeping quotes and escapes in the words so
/// that expansion can remove them later.
pub fn split_keep_quotes(text: &str, escape: char) -> Result<Vec<String>, char> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    // Inside `${…}` whitespace does not split (`${X:-a b}` is one word).
    let mut braces = 0usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quote.is_none() && c == '$' && chars.peek() == Some(&'{') {
            braces += 1;
            current.push(c);
            current.push(chars.next().expect("peeked"));
            continue;
        }
        if quote.is_none() && braces > 0 && c == '}' {
            braces -= 1;
            current.push(c);
            continue;
        }
        if quote.is_none() && braces > 0 && c.is_whitespace() {
            current.push(c);
            continue;
        }
        match quote {
            Some(q) => {
                current.push(c);
                if c == escape && q == '"' {
                    if let Some(n) = chars.next() {
                        current.push(n);
                    }
                } else if c == q {
                    quote = None;
                }
            }
            None if c.is_whitespace() => {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            }
            None => {
                current.push(c);
                if c == escape {
                    if let Some(n) = chars.next() {
                        current.push(n);
                    }
                } else if c == '"' || c == '\'' {
                    quote = Some(c);
                }
            }
        }
    }
    if let Some(q) = quote {
        return Err(q);
    }
    if !current.is_empty() {
        words.push(current);
    }
    Ok(words)
}

/// `KEY=value KEY2="v 2"` or the legacy `KEY value with spaces` form.
/// Values are still unexpanded (quotes kept).
pub fn key_value_pairs(text: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = split_keep_quotes(text, escape).map_err(|q| format!("unterminated `{q}` quote"))?;
    let Some(first) = words.first() else {
        return Err("expected KEY=value".to_string());
    };
    if !first.contains('=') {
        // Legacy form: the rest of the line, as written, is the value.
        let rest = text.trim_start()[first.len()..].trim().to_string();
        return Ok(vec![(first.clone(), rest)]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!(
                "`{w}` is not KEY=value: a list of assignments needs `=` in each"
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_with_quotes() {
        let p = key_value_pairs("A=1 B=\"two words\"   C='x y' D=", '\\').unwrap();
        assert_eq!(
            p,
            [
                ("A", "1"),
                ("B", "\"two words\""),
                ("C", "'x y'"),
                ("D", "")
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn legacy_form_keeps_spaces() {
        let p = key_value_pairs("NAME some value here", '\\').unwrap();
        assert_eq!(p, [("NAME".to_string(), "some value here".to_string())]);
    }

    #[test]
    fn escaped_spaces_stay_in_one_word() {
        let p = key_value_pairs("A=x\\ y B=2", '\\').unwrap();
        assert_eq!(p[0], ("A".to_string(), "x\\ y".to_string()));
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn braces_keep_spaces() {
        let p = key_value_pairs("A=${X:-a b} B=2", '\\').unwrap();
        assert_eq!(p[0], ("A".to_string(), "${X:-a b}".to_string()));
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn errors() {
        assert!(key_value_pairs("A=1 B", '\\').is_err());
        assert!(key_value_pairs("A=\"open", '\\').is_err());
        assert!(key_value_pairs("=x", '\\').is_err());
    }
}
