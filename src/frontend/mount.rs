//! `RUN --mount=…` options, parsed the way BuildKit reads them (a CSV list
//! of `key=value` fields and bare flags).

use serde::{Deserialize, Serialize};

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

/// One `--mount` of a RUN step, after variable expansion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum MountSpec {
    Bind {
        target: String,
        /// Path inside the context or the `from` image; `/` by default.
        source: String,
        from: Option<String>,
        readwrite: bool,
    },
    Cache {
        id: String,
        target: String,
        sharing: Sharing,
        readonly: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Tmpfs {
        target: String,
        size: Option<u64>,
    },
    Secret {
        id: String,
        target: String,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

impl MountSpec {
    pub fn target(&self) -> &str {
        match self {
            MountSpec::Bind { target, .. }
            | MountSpec::Cache { target, .. }
            | MountSpec::Tmpfs { target, .. }
            | MountSpec::Secret { target, .. } => target,
        }
    }
}

/// Splits a CSV record: commas separate fields, `"…"` quotes a field.
fn csv_fields(text: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                current.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if quoted {
        return Err("unterminated `\"` in mount options".to_string());
    }
    fields.push(current);
    Ok(fields
        .into_iter()
        .map(|f| f.trim().to_string())
        .filter(|f| !f.is_empty())
        .collect())
}

fn parse_bool(key: &str, value: Option<&str>) -> Result<bool, String> {
    match value {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(v) => Err(format!("`{key}` takes true or false, not `{v}`")),
    }
}

fn parse_octal(key: &str, value: &str) -> Result<u32, String> {
    u32::from_str_radix(value, 8).map_err(|_| format!("`{key}={value}` is not an octal mode"))
}

fn parse_id(key: &str, value: &str) -> Result<u32, String> {
    value
        .parse()
        .map_err(|_| format!("`{key}={value}` is not a number"))
}

fn parse_size(value: &str) -> Result<u64, String> {
    let (digits, mult) = match value.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (value, 1u64),
        Some((i, _)) => {
            let mult = match value[i..].to_ascii_lowercase().as_str() {
                "b" => 1,
                "k" | "kb" | "kib" => 1 << 10,
                "m" | "mb" | "mib" => 1 << 20,
                "g" | "gb" | "gib" => 1 << 30,
                _ => return Err(format!("`size={value}` has an unknown unit")),
            };
            (&value[..i], mult)
        }
    };
    digits
        .parse::<u64>()
        .map(|n| n * mult)
        .map_err(|_| format!("`size={value}` is not a size"))
}

/// Parses the value of one `--mount` flag.
pub fn parse_mount(text: &str) -> Result<MountSpec, String> {
    let mut kind = "bind".to_string();
    let mut target = None;
    let mut source = None;
    let mut from = None;
    let mut id = None;
    let mut readwrite = None;
    let mut sharing = Sharing::Shared;
    let mut mode = None;
    let mut uid = 0;
    let mut gid = 0;
    let mut size = None;
    let mut required = false;
    for field in csv_fields(text)? {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
            None => (field.to_ascii_lowercase(), None),
        };
        let need = |v: Option<String>| v.ok_or_else(|| format!("`{key}` needs a value"));
        match key.as_str() {
            "type" => kind = need(value)?,
            "target" | "dst" | "destination" => target = Some(need(value)?),
            "source" | "src" => source = Some(need(value)?),
            "from" => from = Some(need(value)?),
            "id" => id = Some(need(value)?),
            "ro" | "readonly" => readwrite = Some(!parse_bool(&key, value.as_deref())?),
            "rw" | "readwrite" => readwrite = Some(parse_bool(&key, value.as_deref())?),
            "sharing" => {
                sharing = match need(value)?.as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    other => {
                        return Err(format!(
                            "`sharing={other}` is not one of shared, private, locked"
                        ));
                    }
                }
            }
            "mode" => mode = Some(parse_octal(&key, &need(value)?)?),
            "uid" => uid = parse_id(&key, &need(value)?)?,
            "gid" => gid = parse_id(&key, &need(value)?)?,
            "size" => size = Some(parse_size(&need(value)?)?),
            "required" => required = parse_bool(&key, value.as_deref())?,
            // Accepted for compatibility; kiln's mounts never propagate.
            "bind-propagation" | "consistency" => {}
            _ => return Err(format!("unknown mount option `{key}`")),
        }
    }
    let absolute = |t: String| {
        if t.starts_with('/') {
            t
        } else {
            format!("/{t}")
        }
    };
    let reject = |what: &str, present: bool| {
        if present {
            Err(format!("`{what}` does not apply to type={kind}"))
        } else {
            Ok(())
        }
    };
    match kind.as_str() {
        "bind" => {
            let target = target.ok_or("type=bind needs `target`")?;
            reject("id", id.is_some())?;
            reject("size", size.is_some())?;
            Ok(MountSpec::Bind {
                target: absolute(target),
                source: source.unwrap_or_else(|| "/".to_string()),
                from,
                readwrite: readwrite.unwrap_or(false),
            })
        }
        "cache" => {
            let target = target.ok_or("type=cache needs `target`")?;
            reject("from", from.is_some())?;
            reject("source", source.is_some())?;
            let target = absolute(target);
            Ok(MountSpec::Cache {
                id: id.unwrap_or_else(|| target.clone()),
                target,
                sharing,
                readonly: readwrite == Some(false),
                mode: mode.unwrap_or(0o755),
                uid,
                gid,
            })
        }
        "tmpfs" => {
            let target = target.ok_or("type=tmpfs needs `target`")?;
            reject("from", from.is_some())?;
            reject("source", source.is_some())?;
            Ok(MountSpec::Tmpfs {
                target: absolute(target),
                size,
            })
        }
        "secret" => {
            reject("from", from.is_some())?;
            let id = match (id, &target) {
                (Some(id), _) => id,
                (None, Some(t)) => t.rsplit('/').next().unwrap_or(t).to_string(),
                (None, None) => return Err("type=secret needs `id` or `target`".to_string()),
            };
            if id.is_empty() || id.contains('/') && target.is_none() {
                return Err(format!("secret id `{id}` is not valid"));
            }
            let target = absolute(target.unwrap_or_else(|| format!("/run/secrets/{id}")));
            Ok(MountSpec::Secret {
                id,
                target,
                required,
                mode: mode.unwrap_or(0o400),
                uid,
                gid,
            })
        }
        "ssh" => Err("type=ssh is not supported by kiln; use type=secret".to_string()),
        other => Err(format!(
            "unknown mount type `{other}` (bind, cache, tmpfs, secret)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_defaults_to_read_only_root_of_context() {
        assert_eq!(
            parse_mount("type=bind,target=/src").unwrap(),
            MountSpec::Bind {
                target: "/src".into(),
                source: "/".into(),
                from: None,
                readwrite: false
            }
        );
        assert_eq!(
            parse_mount("target=src,from=builder,source=/out,rw").unwrap(),
            MountSpec::Bind {
                target: "/src".into(),
                source: "/out".into(),
                from: Some("builder".into()),
                readwrite: true
            }
        );
    }

    #[test]
    fn cache_id_defaults_to_target() {
        let m = parse_mount("type=cache,target=/root/.cache/pip,sharing=locked").unwrap();
        assert_eq!(
            m,
            MountSpec::Cache {
                id: "/root/.cache/pip".into(),
                target: "/root/.cache/pip".into(),
                sharing: Sharing::Locked,
                readonly: false,
                mode: 0o755,
                uid: 0,
                gid: 0
            }
        );
    }

    #[test]
    fn secret_defaults() {
        assert_eq!(
            parse_mount("type=secret,id=tok").unwrap(),
            MountSpec::Secret {
                id: "tok".into(),
                target: "/run/secrets/tok".into(),
                required: false,
                mode: 0o400,
                uid: 0,
                gid: 0
            }
        );
        let m = parse_mount("type=secret,target=/etc/token,mode=0444,required").unwrap();
        assert!(
            matches!(m, MountSpec::Secret { ref id, mode: 0o444, required: true, .. } if id == "token")
        );
    }

    #[test]
    fn tmpfs_size_units() {
        assert_eq!(
            parse_mount("type=tmpfs,target=/t,size=64m").unwrap(),
            MountSpec::Tmpfs {
                target: "/t".into(),
                size: Some(64 << 20)
            }
        );
    }

    #[test]
    fn quoted_fields() {
        let m = parse_mount("type=bind,\"target=/a,b\"").unwrap();
        assert_eq!(m.target(), "/a,b");
    }

    #[test]
    fn bad_options_are_named() {
        for (input, needle) in [
            ("type=bind", "needs `target`"),
            ("type=nfs,target=/x", "unknown mount type `nfs`"),
            (
                "type=cache,target=/x,sharing=sometimes",
                "sharing=sometimes",
            ),
            (
                "type=bind,target=/x,colour=blue",
                "unknown mount option `colour`",
            ),
            ("type=cache,target=/x,mode=99", "octal"),
            ("type=tmpfs,target=/x,size=lots", "size=lots"),
            ("type=ssh", "not supported"),
            ("type=secret", "needs `id`"),
            ("type=bind,target=/x,ro=maybe", "true or false"),
            ("type=cache,target=/x,from=img", "does not apply"),
        ] {
            let err = parse_mount(input).unwrap_err();
            assert!(err.contains(needle), "{input}: {err}");
        }
    }
}
