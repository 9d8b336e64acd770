//! `USER name[:group]` → numeric ids, read from the image's own
//! `/etc/passwd` and `/etc/group` (pure parsing here; the sandbox supplies
//! the file contents).

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub supplementary: Vec<u32>,
    pub home: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("unknown user `{0}`: not in the image's /etc/passwd")]
    UnknownUser(String),
    #[error("unknown group `{0}`: not in the image's /etc/group")]
    UnknownGroup(String),
}

/// Resolves `spec` (`user`, `uid`, `user:group`, `uid:gid`).
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<Identity, UserError> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "root" } else { user };
    let entry = passwd
        .lines()
        .filter_map(parse_passwd_line)
        .find(|e| e.0 == user || e.1.to_string() == user);
    let (name, uid, primary_gid, home) = match (entry, user.parse::<u32>()) {
        (Some((n, uid, gid, home)), _) => (Some(n), uid, gid, home),
        // A numeric uid need not exist in passwd.
        (None, Ok(uid)) => (None, uid, uid, "/".to_string()),
        (None, Err(_)) => return Err(UserError::UnknownUser(user.to_string())),
    };
    let gid = match grp {
        None => primary_gid,
        Some(g) => match group
            .lines()
            .filter_map(parse_group_line)
            .find(|e| e.0 == g)
        {
            Some((_, gid, _)) => gid,
            None => g
                .parse()
                .map_err(|_| UserError::UnknownGroup(g.to_string()))?,
        },
    };
    // Supplementary groups only when the group was not given explicitly,
    // as Docker does.
    let supplementary = match (grp, &name) {
        (None, Some(n)) => group
            .lines()
            .filter_map(parse_group_line)
            .filter(|(_, _, members)| members.iter().any(|m| m == n))
            .map(|(_, gid, _)| gid)
            .collect(),
        _ => Vec::new(),
    };
    Ok(Identity {
        uid,
        gid,
        supplementary,
        home,
    })
}

fn parse_passwd_line(line: &str) -> Option<(String, u32, u32, String)> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() < 7 || line.starts_with('#') {
        return None;
    }
    Some((
        f[0].to_string(),
        f[2].parse().ok()?,
        f[3].parse().ok()?,
        f[5].to_string(),
    ))
}

fn parse_group_line(line: &str) -> Option<(String, u32, Vec<String>)> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() < 4 || line.starts_with('#') {
        return None;
    }
    let members = f[3]
        .split(',')
        .filter(|m| !m.is_empty())
        .map(String::from)
        .collect();
    Some((f[0].to_string(), f[2].parse().ok()?, members))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:app\napp:x:1000:\n";

    #[test]
    fn names_and_numbers() {
        let app = resolve("app", PASSWD, GROUP).unwrap();
        assert_eq!(
            (app.uid, app.gid, app.supplementary.clone()),
            (1000, 1000, vec![50])
        );
        assert_eq!(app.home, "/home/app");
        assert_eq!(resolve("", PASSWD, GROUP).unwrap().uid, 0);
        let n = resolve("4242", PASSWD, GROUP).unwrap();
        assert_eq!((n.uid, n.gid), (4242, 4242));
        let g = resolve("app:staff", PASSWD, GROUP).unwrap();
        assert_eq!((g.uid, g.gid, g.supplementary.len()), (1000, 50, 0));
        assert_eq!(resolve("1000:7", PASSWD, GROUP).unwrap().gid, 7);
    }

    #[test]
    fn unknown_names_fail() {
        assert_eq!(
            resolve("nobody", PASSWD, GROUP),
            Err(UserError::UnknownUser("nobody".into()))
        );
        assert_eq!(
            resolve("app:nogroup", PASSWD, GROUP),
            Err(UserError::UnknownGroup("nogroup".into()))
        );
    }
}
