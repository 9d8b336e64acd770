//! Path patterns: `.dockerignore` rules and COPY/ADD source globs.
//!
//! Components are matched like Go's `filepath.Match` (`*`, `?`, `[a-z]`,
//! `[^a]`, `\` escapes), which is what Docker uses; a `**` component matches
//! any number of directories. Written here rather than taken from a crate
//! because gitignore-style crates (`ignore`, `globset`) give `*` and a
//! leading `/` different meanings than Docker does.

/// One compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    components: Vec<String>,
}

impl Pattern {
    /// Compiles a pattern; leading `/` and `./` are dropped, as Docker does.
    pub fn new(text: &str) -> Pattern {
        let components = clean_path(text)
            .split('/')
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect();
        Pattern { components }
    }

    /// True when the pattern contains glob metacharacters.
    pub fn is_glob(text: &str) -> bool {
        text.contains(['*', '?', '['])
    }

    /// Matches a slash-separated relative path exactly.
    pub fn matches(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        match_components(&self.components, &parts)
    }

    /// Matches `path` or any of its parent directories (ignore semantics:
    /// ignoring a directory ignores what is inside it).
    pub fn matches_or_parent(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        (1..=parts.len()).any(|n| match_components(&self.components, &parts[..n]))
    }
}

/// `path.Clean` for slash paths, relative to the root: no leading `/`, no
/// `.`, `..` resolved lexically without escaping the root.
pub fn clean_path(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    out.join("/")
}

fn match_components(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_components(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((p, path_rest)) => match_one(first, p) && match_components(rest, path_rest),
            None => false,
        },
    }
}

/// Go `filepath.Match` for a single component.
fn match_one(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob(&p, &n)
}

fn glob(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|i| glob(&p[1..], &n[i..])),
        Some('?') => !n.is_empty() && glob(&p[1..], &n[1..]),
        Some('[') => {
            let Some(c) = n.first() else { return false };
            match class(&p[1..], *c) {
                Some((matched, used)) => matched && glob(&p[1 + used..], &n[1..]),
                // An unterminated class is a literal `[`.
                None => *c == '[' && glob(&p[1..], &n[1..]),
            }
        }
        Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && glob(&p[2..], &n[1..]),
        Some(c) => n.first() == Some(c) && glob(&p[1..], &n[1..]),
    }
}

/// Matches `c` against a class body (after `[`); returns whether it matched
/// and how many pattern characters the class used, including `]`.
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 0;
    let negate = matches!(p.first(), Some('^') | Some('!'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        let mut lo = p[i];
        if lo == '\\' && i + 1 < p.len() {
            i += 1;
            lo = p[i];
        }
        let mut hi = lo;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            hi = p[i + 2];
            i += 2;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
        i += 1;
    }
    None
}

/// The rules of a `.dockerignore` file, in order.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    rules: Vec<(Pattern, bool)>,
}

impl IgnoreRules {
    /// Parses `.dockerignore` text: one pattern a line, `#` comments, `!`
    /// for exceptions.
    pub fn parse(text: &str) -> IgnoreRules {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| match l.strip_prefix('!') {
                Some(rest) => (Pattern::new(rest.trim()), true),
                None => (Pattern::new(l), false),
            })
            .collect();
        IgnoreRules { rules }
    }

    /// Whether a context-relative path is excluded: the last rule that
    /// matches it (or a parent of it) decides.
    pub fn is_ignored(&self, path: &str) -> bool {
        let mut ignored = false;
        for (pattern, exception) in &self.rules {
            if pattern.matches_or_parent(path) {
                ignored = !exception;
            }
        }
        ignored
    }

    /// Whether some exception rule could re-include something below `dir`,
    /// so that an ignored directory must still be walked.
    pub fn may_reinclude_below(&self, dir: &str) -> bool {
        let depth = dir.split('/').filter(|c| !c.is_empty()).count();
        self.rules.iter().any(|(p, exception)| {
            *exception && (p.components.len() > depth || p.components.iter().any(|c| c == "**"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_match_like_go_filepath_match() {
        assert!(match_one("*.py", "a.py"));
        assert!(!match_one("*.py", "a.pyc"));
        assert!(match_one("a?c", "abc"));
        assert!(match_one("[a-c]x", "bx"));
        assert!(!match_one("[^a-c]x", "bx"));
        assert!(match_one("[!a-c]x", "dx"));
        assert!(match_one("\\*", "*"));
        assert!(!match_one("\\*", "a"));
        assert!(match_one("*", ""));
    }

    #[test]
    fn star_does_not_cross_directories() {
        assert!(!Pattern::new("*.py").matches("src/a.py"));
        assert!(Pattern::new("*/*.py").matches("src/a.py"));
        assert!(Pattern::new("**/*.py").matches("src/deep/a.py"));
        assert!(Pattern::new("**/*.py").matches("a.py"));
        assert!(Pattern::new("src/**").matches("src/a/b"));
    }

    #[test]
    fn leading_slash_and_dot_are_ignored() {
        assert!(Pattern::new("/build").matches("build"));
        assert!(Pattern::new("./build").matches("build"));
        assert_eq!(clean_path("/a/./b/../c/"), "a/c");
        assert_eq!(clean_path("../../x"), "x");
    }

    #[test]
    fn dockerignore_exceptions_and_parents() {
        let rules = IgnoreRules::parse("# comment\n*.md\n!README.md\nbuild\n\n.git\n");
        assert!(rules.is_ignored("CHANGES.md"));
        assert!(!rules.is_ignored("README.md"));
        assert!(rules.is_ignored("build/out/x.o"));
        assert!(rules.is_ignored(".git/HEAD"));
        assert!(!rules.is_ignored("src/main.rs"));
        assert!(
            !rules.is_ignored("docs/x.md"),
            "*.md matches top-level files only"
        );
    }

    #[test]
    fn later_rules_win() {
        let rules = IgnoreRules::parse("!keep\n*\n");
        assert!(rules.is_ignored("keep"));
        let rules = IgnoreRules::parse("*\n!keep\n");
        assert!(!rules.is_ignored("keep"));
        assert!(rules.may_reinclude_below(""));
    }
}
