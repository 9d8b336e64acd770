//! Dockerfile templates: minijinja with strict undefined, the project's
//! folder as the include root, params as variables.

use std::path::Path;

use minijinja::{Environment, UndefinedBehavior};

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct TemplateError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// Renders the template at `name` (relative to `root`).
pub fn render_file(
    root: &Path,
    name: &str,
    params: &impl serde::Serialize,
) -> Result<String, TemplateError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.set_loader(minijinja::path_loader(root));
    let tmpl = env.get_template(name).map_err(|e| convert(name, &e))?;
    tmpl.render(params).map_err(|e| convert(name, &e))
}

/// Renders a template string (a tag, a suite, a URL) from `kiln.toml`.
pub fn render_str(
    origin: &str,
    text: &str,
    params: &impl serde::Serialize,
) -> Result<String, TemplateError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.render_str(text, params).map_err(|e| {
        let mut err = convert(origin, &e);
        // A one-line string from kiln.toml: name its origin, show it.
        err.file = origin.to_string();
        err.message = format!("{} in `{text}`", err.message);
        err
    })
}

fn convert(fallback: &str, e: &minijinja::Error) -> TemplateError {
    let mut message = e
        .detail()
        .map(String::from)
        .unwrap_or_else(|| e.kind().to_string());
    if e.kind() == minijinja::ErrorKind::TemplateNotFound {
        message = format!("template not found: {}", e.detail().unwrap_or(""));
    }
    TemplateError {
        file: e.name().unwrap_or(fallback).to_string(),
        line: e.line().unwrap_or(0),
        message: format!("{message} ({})", e.kind()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn params() -> BTreeMap<String, String> {
        [("debian".to_string(), "bookworm".to_string())].into()
    }

    #[test]
    fn includes_and_variables() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("fragments")).unwrap();
        std::fs::write(
            t.path().join("fragments/apt.Dockerfile"),
            "RUN aptinstall x\n",
        )
        .unwrap();
        std::fs::write(
            t.path().join("a.Dockerfile"),
            "FROM debian:{{ debian }}\n{% include \"fragments/apt.Dockerfile\" %}",
        )
        .unwrap();
        assert_eq!(
            render_file(t.path(), "a.Dockerfile", &params()).unwrap(),
            "FROM debian:bookworm\nRUN aptinstall x\n"
        );
    }

    #[test]
    fn undefined_variables_name_file_and_line() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join("b.Dockerfile"),
            "FROM x\n\nRUN echo {{ pyton }}\n",
        )
        .unwrap();
        let e = render_file(t.path(), "b.Dockerfile", &params()).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("b.Dockerfile", 3));
        assert!(e.message.contains("undefined"), "{}", e.message);
        let e = render_file(t.path(), "missing.Dockerfile", &params()).unwrap_err();
        assert!(e.message.contains("not found"), "{}", e.message);
        std::fs::write(
            t.path().join("c.Dockerfile"),
            "{% include \"nope.Dockerfile\" %}\n",
        )
        .unwrap();
        let e = render_file(t.path(), "c.Dockerfile", &params()).unwrap_err();
        assert!(e.message.contains("nope.Dockerfile"), "{}", e.message);
        assert_eq!(
            render_str("tags", "py:{{debian}}", &params()).unwrap(),
            "py:bookworm"
        );
        assert!(render_str("tags", "py:{{nope}}", &params()).is_err());
    }
}

#[cfg(test)]
mod data_tests {
    #[test]
    fn json_data_is_indexable() {
        let ctx =
            serde_json::json!({"versions": {"3.11.2": {"minor": "3.11"}}, "python": "3.11.2"});
        assert_eq!(
            super::render_str("t", "{{ versions[python].minor }}", &ctx).unwrap(),
            "3.11"
        );
    }
}
