//! Dockerfile → stages and instructions.
//!
//! Lexing is parse-dockerfile's; this module turns its tree into kiln's own
//! model, keeps every instruction's location and source text, and checks
//! what can be checked before variables are known (flags, forms, names).
//! Variables are expanded later, by the planner, with the values in scope at
//! each instruction.

pub mod expand;
pub mod location;
pub mod mount;
pub mod pattern;
pub mod words;

use std::path::{Path, PathBuf};

use parse_dockerfile as pd;

pub use location::Location;

/// Why a Dockerfile could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    #[error("{loc}: {message}")]
    Syntax { loc: Location, message: String },
    #[error("cannot read Dockerfile `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An instruction with where it came from.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub loc: Location,
    /// The instruction as written (continuations joined), for history.
    pub text: String,
    pub value: T,
}

/// `ARG NAME[=default]`; the default is unexpanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

/// Exec form (`["a", "b"]`) or shell form (a string for the SHELL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    Exec(Vec<String>),
    Shell(String),
}

/// `RUN --network=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    #[default]
    Host,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Raw `--mount` values, expanded and parsed by the planner.
    pub mounts: Vec<String>,
    pub network: Network,
    pub command: CommandLine,
}

/// A COPY or ADD source: a path (or URL, for ADD) or an inline heredoc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    Path(String),
    HereDoc {
        name: String,
        content: String,
        expand: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub is_add: bool,
    pub sources: Vec<CopySource>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub checksum: Option<String>,
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    None,
    Cmd {
        test: CommandLine,
        interval: Option<String>,
        timeout: Option<String>,
        start_period: Option<String>,
        start_interval: Option<String>,
        retries: Option<String>,
    },
}

/// One instruction of a stage, variables not yet expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    Arg(Vec<ArgDecl>),
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    Run(Run),
    Copy(Copy),
    Workdir(String),
    User(String),
    Cmd(CommandLine),
    Entrypoint(CommandLine),
    Shell(Vec<String>),
    Expose(String),
    Volume(Vec<String>),
    Stopsignal(String),
    Healthcheck(Healthcheck),
    Onbuild(String),
    Maintainer(String),
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub index: usize,
    pub name: Option<String>,
    /// The FROM image, unexpanded.
    pub base: String,
    pub platform: Option<String>,
    pub loc: Location,
    pub instructions: Vec<Located<Instruction>>,
}

#[derive(Debug, Clone)]
pub struct Dockerfile {
    pub path: PathBuf,
    pub escape: char,
    pub global_args: Vec<Located<ArgDecl>>,
    pub stages: Vec<Stage>,
}

impl Dockerfile {
    /// Reads and parses a Dockerfile from disk.
    pub fn read(path: &Path) -> Result<Dockerfile, FrontendError> {
        let text = std::fs::read_to_string(path).map_err(|source| FrontendError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        parse(path, &text)
    }

    /// The stage with this name (case-insensitive, as Docker) or index.
    pub fn find_stage(&self, name: &str) -> Option<&Stage> {
        self.stages
            .iter()
            .find(|s| {
                s.name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .or_else(|| name.parse::<usize>().ok().and_then(|i| self.stages.get(i)))
    }
}

struct Ctx<'t> {
    path: &'t Path,
    text: &'t str,
    escape: char,
}

impl Ctx<'_> {
    fn loc(&self, offset: usize) -> Location {
        Location::of_offset(self.path, self.text, offset)
    }

    fn err(&self, offset: usize, message: impl Into<String>) -> FrontendError {
        FrontendError::Syntax {
            loc: self.loc(offset),
            message: message.into(),
        }
    }
}

/// Parses Dockerfile text. `path` is used in messages only.
pub fn parse(path: &Path, text: &str) -> Result<Dockerfile, FrontendError> {
    let parsed = pd::parse(text).map_err(|e| FrontendError::Syntax {
        loc: Location {
            file: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
        },
        message: strip_position(&e.to_string()),
    })?;
    let escape = parsed
        .parser_directives
        .escape
        .as_ref()
        .map_or('\\', |d| d.value.value);
    let cx = Ctx { path, text, escape };
    let starts: Vec<usize> = parsed.instructions.iter().map(instruction_start).collect();
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for (i, inst) in parsed.instructions.iter().enumerate() {
        let start = starts[i];
        let end = starts.get(i + 1).copied().unwrap_or(text.len());
        let source_text = instruction_text(&text[start..end]);
        let loc = cx.loc(start);
        if let pd::Instruction::From(from) = inst {
            let mut platform = None;
            for flag in &from.options {
                match &*flag.name.value {
                    "platform" => platform = flag.value.as_ref().map(|v| v.value.to_string()),
                    other => {
                        return Err(cx.err(
                            flag.span().start,
                            format!("unknown flag `--{other}` for FROM"),
                        ));
                    }
                }
            }
            let name = from.as_.as_ref().map(|(_, n)| n.value.to_ascii_lowercase());
            if let Some(n) = &name {
                if !is_valid_stage_name(n) {
                    return Err(cx.err(start, format!("invalid stage name `{n}`")));
                }
                if stages.iter().any(|s| s.name.as_deref() == Some(n)) {
                    return Err(cx.err(start, format!("duplicate stage name `{n}`")));
                }
            }
            stages.push(Stage {
                index: stages.len(),
                name,
                base: from.image.value.to_string(),
                platform,
                loc,
                instructions: Vec::new(),
            });
            continue;
        }
        let value = convert(&cx, inst, start, end)?;
        match stages.last_mut() {
            Some(stage) => stage.instructions.push(Located {
                loc,
                text: source_text,
                value,
            }),
            None => match value {
                Instruction::Arg(decls) => {
                    for d in decls {
                        global_args.push(Located {
                            loc: loc.clone(),
                            text: source_text.clone(),
                            value: d,
                        });
                    }
                }
                _ => return Err(cx.err(start, "only ARG may come before the first FROM")),
            },
        }
    }
    if stages.is_empty() {
        return Err(cx.err(
            text.len(),
            "no FROM instruction: a Dockerfile needs at least one stage",
        ));
    }
    Ok(Dockerfile {
        path: path.to_path_buf(),
        escape,
        global_args,
        stages,
    })
}

/// parse-dockerfile appends " at line L column C"; kiln prints the position
/// in front instead.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn is_valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn instruction_start(inst: &pd::Instruction<'_>) -> usize {
    use pd::Instruction as I;
    match inst {
        I::Add(i) => i.add.span.start,
        I::Arg(i) => i.arg.span.start,
        I::Cmd(i) => i.cmd.span.start,
        I::Copy(i) => i.copy.span.start,
        I::Entrypoint(i) => i.entrypoint.span.start,
        I::Env(i) => i.env.span.start,
        I::Expose(i) => i.expose.span.start,
        I::From(i) => i.from.span.start,
        I::Healthcheck(i) => i.healthcheck.span.start,
        I::Label(i) => i.label.span.start,
        I::Maintainer(i) => i.maintainer.span.start,
        I::Onbuild(i) => i.onbuild.span.start,
        I::Run(i) => i.run.span.start,
        I::Shell(i) => i.shell.span.start,
        I::Stopsignal(i) => i.stopsignal.span.start,
        I::User(i) => i.user.span.start,
        I::Volume(i) => i.volume.span.start,
        I::Workdir(i) => i.workdir.span.start,
        _ => 0,
    }
}

/// The source of one instruction without the comments and blank lines that
/// follow it.
fn instruction_text(raw: &str) -> String {
    let mut lines: Vec<&str> = raw.lines().collect();
    while lines
        .last()
        .is_some_and(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        lines.pop();
    }
    lines.join("\n")
}

/// Joins shell-form continuations: `escape` + newline disappears, and
/// comment lines inside a continued instruction are dropped, as Docker does.
pub fn join_continuations(text: &str, escape: char) -> String {
    let mut out = String::new();
    let mut lines = text.split('\n').peekable();
    let mut first = true;
    while let Some(line) = lines.next() {
        if !first && line.trim_start().starts_with('#') {
            continue;
        }
        first = false;
        let trimmed = line.trim_end();
        match trimmed.strip_suffix(escape) {
            Some(body) if lines.peek().is_some() => out.push_str(body),
            _ => {
                out.push_str(line);
                if lines.peek().is_some() {
                    out.push('\n');
                }
            }
        }
    }
    out.trim().to_string()
}

fn flag_value(cx: &Ctx<'_>, flag: &pd::Flag<'_>) -> Result<String, FrontendError> {
    match &flag.value {
        Some(v) => Ok(v.value.to_string()),
        None => Err(cx.err(
            flag.span().start,
            format!("flag `--{}` needs a value", flag.name.value),
        )),
    }
}

fn command_line(cx: &Ctx<'_>, cmd: &pd::Command<'_>) -> CommandLine {
    match cmd {
        pd::Command::Exec(list) => {
            CommandLine::Exec(list.value.iter().map(|s| s.value.to_string()).collect())
        }
        pd::Command::Shell(s) => CommandLine::Shell(join_continuations(s.value, cx.escape)),
        // parse-dockerfile marks the enum non-exhaustive; a new form would
        // show up here as an empty shell command rather than a panic.
        _ => CommandLine::Shell(String::new()),
    }
}

fn convert(
    cx: &Ctx<'_>,
    inst: &pd::Instruction<'_>,
    start: usize,
    end: usize,
) -> Result<Instruction, FrontendError> {
    use pd::Instruction as I;
    Ok(match inst {
        I::Arg(a) => {
            let words = words::split_keep_quotes(&a.arguments.value, cx.escape)
                .map_err(|q| cx.err(a.arguments.span.start, format!("unterminated `{q}` quote")))?;
            let decls = words
                .into_iter()
                .map(|w| match w.split_once('=') {
                    Some((k, v)) => ArgDecl {
                        name: k.to_string(),
                        default: Some(v.to_string()),
                    },
                    None => ArgDecl {
                        name: w,
                        default: None,
                    },
                })
                .collect::<Vec<_>>();
            for d in &decls {
                if d.name.is_empty()
                    || !d
                        .name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    return Err(cx.err(
                        a.arguments.span.start,
                        format!("invalid ARG name `{}`", d.name),
                    ));
                }
            }
            Instruction::Arg(decls)
        }
        I::Env(e) => Instruction::Env(
            words::key_value_pairs(&e.arguments.value, cx.escape)
                .map_err(|m| cx.err(e.arguments.span.start, m))?,
        ),
        I::Label(l) => Instruction::Label(
            words::key_value_pairs(&l.arguments.value, cx.escape)
                .map_err(|m| cx.err(l.arguments.span.start, m))?,
        ),
        I::Maintainer(m) => Instruction::Maintainer(m.name.value.to_string()),
        I::Run(r) => {
            let mut mounts = Vec::new();
            let mut network = Network::Host;
            let mut args_start = r.run.span.end;
            for flag in &r.options {
                args_start = flag.span().end;
                match &*flag.name.value {
                    "mount" => mounts.push(flag_value(cx, flag)?),
                    "network" => {
                        network = match flag_value(cx, flag)?.as_str() {
                            "default" | "host" => Network::Host,
                            "none" => Network::None,
                            other => {
                                return Err(cx.err(
                                    flag.span().start,
                                    format!("`--network={other}`: use default, host or none"),
                                ));
                            }
                        }
                    }
                    "security" => {
                        let v = flag_value(cx, flag)?;
                        if v != "sandbox" {
                            return Err(cx.err(
                                flag.span().start,
                                format!("`--security={v}` is not supported; only sandbox"),
                            ));
                        }
                    }
                    other => {
                        return Err(cx.err(
                            flag.span().start,
                            format!("unknown flag `--{other}` for RUN"),
                        ));
                    }
                }
            }
            let command = if r.here_docs.is_empty() {
                command_line(cx, &r.arguments)
            } else {
                match (&r.arguments, r.here_docs.as_slice()) {
                    // `RUN <<EOT` alone: the heredoc is the script.
                    (pd::Command::Shell(s), [doc]) if s.value.trim().is_empty() => {
                        CommandLine::Shell(doc.value.to_string())
                    }
                    // Otherwise the shell sees the heredocs itself.
                    _ => CommandLine::Shell(
                        instruction_text(&cx.text[args_start..end])
                            .trim()
                            .to_string(),
                    ),
                }
            };
            Instruction::Run(Run {
                mounts,
                network,
                command,
            })
        }
        I::Copy(c) => copy_like(cx, false, &c.options, &c.src, &c.dest)?,
        I::Add(a) => copy_like(cx, true, &a.options, &a.src, &a.dest)?,
        I::Workdir(w) => Instruction::Workdir(w.arguments.value.to_string()),
        I::User(u) => Instruction::User(u.arguments.value.to_string()),
        I::Cmd(c) => Instruction::Cmd(command_line(cx, &c.arguments)),
        I::Entrypoint(e) => Instruction::Entrypoint(command_line(cx, &e.arguments)),
        I::Shell(s) => {
            Instruction::Shell(s.arguments.iter().map(|a| a.value.to_string()).collect())
        }
        I::Expose(e) => Instruction::Expose(
            e.arguments
                .iter()
                .map(|a| a.value.as_ref())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        I::Volume(v) => Instruction::Volume(match &v.arguments {
            pd::JsonOrStringArray::Json(list) => {
                list.value.iter().map(|s| s.value.to_string()).collect()
            }
            pd::JsonOrStringArray::String(list) => {
                list.iter().map(|s| s.value.to_string()).collect()
            }
        }),
        I::Stopsignal(s) => Instruction::Stopsignal(s.arguments.value.to_string()),
        I::Healthcheck(h) => healthcheck(cx, h)?,
        I::Onbuild(o) => {
            let inner_start = instruction_start(&o.instruction);
            let inner = instruction_text(&cx.text[inner_start..end]);
            if matches!(
                *o.instruction,
                I::From(_) | I::Maintainer(_) | I::Onbuild(_)
            ) {
                return Err(cx.err(
                    inner_start,
                    "ONBUILD may not trigger FROM, MAINTAINER or ONBUILD",
                ));
            }
            Instruction::Onbuild(join_continuations(&inner, cx.escape))
        }
        I::From(_) => unreachable!("FROM is handled by the caller"),
        _ => return Err(cx.err(start, "unsupported instruction")),
    })
}

fn copy_like(
    cx: &Ctx<'_>,
    is_add: bool,
    options: &[pd::Flag<'_>],
    src: &[pd::Source<'_>],
    dest: &pd::UnescapedString<'_>,
) -> Result<Instruction, FrontendError> {
    let name = if is_add { "ADD" } else { "COPY" };
    let mut copy = Copy {
        is_add,
        sources: Vec::new(),
        dest: dest.value.to_string(),
        from: None,
        chown: None,
        chmod: None,
        link: false,
        checksum: None,
        exclude: Vec::new(),
    };
    for flag in options {
        match (&*flag.name.value, is_add) {
            ("from", false) => copy.from = Some(flag_value(cx, flag)?),
            ("chown", _) => copy.chown = Some(flag_value(cx, flag)?),
            ("chmod", _) => {
                let v = flag_value(cx, flag)?;
                if u32::from_str_radix(&v, 8).is_err() && !v.contains('$') {
                    return Err(cx.err(
                        flag.span().start,
                        format!("`--chmod={v}` is not an octal mode"),
                    ));
                }
                copy.chmod = Some(v);
            }
            ("link", _) => copy.link = flag.value.as_ref().is_none_or(|v| v.value != "false"),
            ("exclude", _) => copy.exclude.push(flag_value(cx, flag)?),
            ("checksum", true) => copy.checksum = Some(flag_value(cx, flag)?),
            ("keep-git-dir", true) => {}
            (other, _) => {
                return Err(cx.err(
                    flag.span().start,
                    format!("unknown flag `--{other}` for {name}"),
                ));
            }
        }
    }
    for s in src {
        copy.sources.push(match s {
            pd::Source::Path(p) => CopySource::Path(p.value.to_string()),
            pd::Source::HereDoc(doc) => {
                let marker = &cx.text[..doc.span.start];
                let name = heredoc_name(marker).unwrap_or_else(|| "heredoc".to_string());
                CopySource::HereDoc {
                    name,
                    content: doc.value.to_string(),
                    expand: doc.expand,
                }
            }
            _ => return Err(cx.err(dest.span.start, format!("unsupported {name} source form"))),
        });
    }
    Ok(Instruction::Copy(copy))
}

/// The delimiter of the last `<<NAME` before a heredoc body: COPY uses it as
/// the file name.
fn heredoc_name(before: &str) -> Option<String> {
    let i = before.rfind("<<")?;
    let rest = before[i + 2..].trim_start_matches('-');
    let name: String = rest
        .chars()
        .skip_while(|c| *c == '"' || *c == '\'')
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '\'')
        .collect();
    (!name.is_empty()).then_some(name)
}

fn healthcheck(
    cx: &Ctx<'_>,
    h: &pd::HealthcheckInstruction<'_>,
) -> Result<Instruction, FrontendError> {
    let mut interval = None;
    let mut timeout = None;
    let mut start_period = None;
    let mut start_interval = None;
    let mut retries = None;
    for flag in &h.options {
        let v = Some(flag_value(cx, flag)?);
        match &*flag.name.value {
            "interval" => interval = v,
            "timeout" => timeout = v,
            "start-period" => start_period = v,
            "start-interval" => start_interval = v,
            "retries" => retries = v,
            other => {
                return Err(cx.err(
                    flag.span().start,
                    format!("unknown flag `--{other}` for HEALTHCHECK"),
                ));
            }
        }
    }
    Ok(Instruction::Healthcheck(match &h.arguments {
        pd::HealthcheckArguments::None { .. } => Healthcheck::None,
        pd::HealthcheckArguments::Cmd { arguments, .. } => Healthcheck::Cmd {
            test: command_line(cx, arguments),
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        },
        _ => return Err(cx.err(h.healthcheck.span.start, "unsupported HEALTHCHECK form")),
    }))
}

#[cfg(test)]
pub(crate) mod tests;
