//! The host's Debian mirror, read from its apt sources, so that no mirror
//! name is ever written into kiln.

use std::fs;
use std::path::Path;

use anyhow::bail;

/// The first `deb` URI of a non-security suite in deb822 `.sources` text.
pub fn mirror_from_deb822(text: &str) -> Option<String> {
    for stanza in text.split("\n\n") {
        let mut types = "";
        let mut uris = "";
        let mut suites = "";
        for line in stanza.lines() {
            if let Some((k, v)) = line.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "types" => types = v.trim(),
                    "uris" => uris = v.trim(),
                    "suites" => suites = v.trim(),
                    _ => {}
                }
            }
        }
        let is_deb = types.split_whitespace().any(|t| t == "deb");
        let security = suites.split_whitespace().all(|s| s.ends_with("-security"));
        if is_deb
            && !security
            && let Some(uri) = uris.split_whitespace().next()
        {
            return Some(uri.to_string());
        }
    }
    None
}

/// The first `deb` URI of a non-security suite in one-line `sources.list`.
pub fn mirror_from_list(text: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let rest = rest.trim_start();
        let rest = if rest.starts_with('[') {
            rest.split_once(']').map(|(_, r)| r.trim_start())?
        } else {
            rest
        };
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        if !suite.ends_with("-security") {
            return Some(uri.to_string());
        }
    }
    None
}

/// Reads `/etc/apt/sources.list.d/*.sources` and `/etc/apt/sources.list`.
pub fn host_mirror() -> anyhow::Result<String> {
    let dir = Path::new("/etc/apt/sources.list.d");
    if dir.is_dir() {
        let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let text = fs::read_to_string(&path)?;
            let found = match path.extension().and_then(|x| x.to_str()) {
                Some("sources") => mirror_from_deb822(&text),
                Some("list") => mirror_from_list(&text),
                _ => None,
            };
            if let Some(m) = found {
                return Ok(m);
            }
        }
    }
    if let Ok(text) = fs::read_to_string("/etc/apt/sources.list")
        && let Some(m) = mirror_from_list(&text)
    {
        return Ok(m);
    }
    bail!("no Debian mirror found in the host's apt sources; pass one with --mirror URL")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_skips_security() {
        let text = "Types: deb\nURIs: http://sec.example/debian-security\nSuites: bookworm-security\nComponents: main\n\nTypes: deb deb-src\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n";
        assert_eq!(
            mirror_from_deb822(text).as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(
            mirror_from_deb822("Types: deb-src\nURIs: http://x\nSuites: a\n"),
            None
        );
    }

    #[test]
    fn one_line_format_with_options() {
        let text = "# comment\ndeb [signed-by=/k.gpg] http://m.example/debian bookworm main\n";
        assert_eq!(
            mirror_from_list(text).as_deref(),
            Some("http://m.example/debian")
        );
        assert_eq!(
            mirror_from_list("deb http://s.example bookworm-security main\n"),
            None
        );
    }
}
