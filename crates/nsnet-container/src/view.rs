//! What `ps` and `inspect` show of a container: the STATUS, PORTS and COMMAND texts, Docker's
//! `ps` table, and the Docker-shaped inspect JSON. Pure functions of a [`Container`] (whose
//! status is itself checked against the process table on every read) and the clock.

use serde_json::{Value, json};

use crate::publish::Publish;
use crate::store::{Container, Status};
use crate::time;

pub fn status_text(c: &Container) -> String {
    let now = time::now();
    match c.status() {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", time::human(now - c.state.started)),
        Status::Exited => match (c.state.exit_code, c.state.finished) {
            (Some(code), f) if f > 0.0 => {
                format!("Exited ({code}) {} ago", time::human(now - f))
            }
            // Died without its monitor: the exit status is unknown.
            _ => "Exited (unknown)".into(),
        },
    }
}

pub fn ports_text(c: &Container) -> String {
    if c.status() != Status::Running {
        return String::new();
    }
    c.config
        .publish
        .iter()
        .map(Publish::display)
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn command_text(c: &Container, full: bool) -> String {
    let cmd = c.config.args.join(" ");
    if full || cmd.chars().count() <= 20 {
        format!("\"{cmd}\"")
    } else {
        format!("\"{}…\"", cmd.chars().take(19).collect::<String>())
    }
}

/// Docker's `ps` layout (Go's text/tabwriter with padding 3, as Docker prints it): columns
/// padded to the widest cell plus three spaces, the last column and trailing blanks unpadded.
pub fn table(rows: &[Vec<String>]) -> String {
    use std::io::Write;
    let mut tw = tabwriter::TabWriter::new(Vec::new()).minwidth(0).padding(3);
    for r in rows {
        let _ = writeln!(tw, "{}", r.join("\t"));
    }
    let text = tw
        .into_inner()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    text.lines()
        .map(|l| l.trim_end().to_string() + "\n")
        .collect()
}

/// The `ps` output for `list` (newest first): the ids alone with `quiet`, else the table.
/// `no_trunc` keeps full ids and commands.
pub fn ps(list: &[Container], quiet: bool, no_trunc: bool) -> String {
    let short = |id: &str| {
        if no_trunc {
            id.to_string()
        } else {
            id[..12.min(id.len())].to_string()
        }
    };
    if quiet {
        return list
            .iter()
            .map(|c| format!("{}\n", short(c.id())))
            .collect();
    }
    let mut rows = vec![
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let now = time::now();
    for c in list {
        rows.push(vec![
            short(c.id()),
            c.config.image.clone(),
            command_text(c, no_trunc),
            format!("{} ago", time::human(now - c.config.created)),
            status_text(c),
            ports_text(c),
            c.config.name.clone(),
        ]);
    }
    table(&rows)
}

/// Docker-shaped inspect JSON.
pub fn inspect_value(c: &Container) -> Value {
    let status = c.status();
    let running = status == Status::Running;
    let a = c
        .net
        .as_ref()
        .and_then(|n| n.attachment.clone())
        .filter(|_| running);
    let mut ports = serde_json::Map::new();
    for p in &c.config.publish {
        ports.insert(
            format!("{}/{}", p.container_port, p.proto),
            json!([{"HostIp": if p.host_ip.is_empty() {"0.0.0.0"} else {&p.host_ip}, "HostPort": p.host_port.to_string()}]),
        );
    }
    let mut networks = serde_json::Map::new();
    if let Some(a) = &a {
        networks.insert(
            a.network.clone(),
            json!({
                "IPAddress": a.ip.to_string(),
                "IPPrefixLen": a.prefix_len,
                "Gateway": a.gateway.map(|g| g.to_string()).unwrap_or_default(),
                "MacAddress": a.mac,
                "Bridge": a.bridge,
                "HostVeth": a.host_veth,
                "Interface": a.ifname,
            }),
        );
    }
    let pid = if running { c.state.pid } else { 0 };
    json!({
        "Id": c.id(),
        "Name": format!("/{}", c.config.name),
        "Created": time::rfc3339(c.config.created),
        "Path": c.config.args.first().cloned().unwrap_or_default(),
        "Args": c.config.args.get(1..).unwrap_or_default(),
        "Image": c.config.image,
        "State": {
            "Status": status.as_str(),
            "Running": running,
            "Pid": pid,
            "ExitCode": c.state.exit_code.unwrap_or(0),
            "StartedAt": time::rfc3339(c.state.started),
            "FinishedAt": time::rfc3339(c.state.finished),
        },
        "Config": {
            "Hostname": c.config.hostname,
            "Env": c.config.env,
            "Cmd": c.config.args,
            "WorkingDir": c.config.cwd,
            "Tty": c.config.tty,
        },
        "HostConfig": {
            "NetworkMode": c.config.network,
            "AutoRemove": c.config.auto_remove,
            "Runtime": c.config.runtime,
        },
        "NetworkSettings": {
            "SandboxKey": if running && c.config.network != "host" { format!("/proc/{pid}/ns/net") } else { String::new() },
            "IPAddress": a.as_ref().map(|a| a.ip.to_string()).unwrap_or_default(),
            "IPPrefixLen": a.as_ref().map(|a| a.prefix_len).unwrap_or(0),
            "Gateway": a.as_ref().and_then(|a| a.gateway).map(|g| g.to_string()).unwrap_or_default(),
            "MacAddress": a.as_ref().map(|a| a.mac.clone()).unwrap_or_default(),
            "Ports": ports,
            "Networks": networks,
        },
        "NsnetStateDir": c.config.instance,
        "NsnetBypass": bypass_value(c),
        "LogPath": if c.config.detached { c.log_path().display().to_string() } else { String::new() },
    })
}

/// `NsnetBypass`: on or off, and the service's counts once it ran.
fn bypass_value(c: &Container) -> Value {
    let mut v = json!({"Enabled": c.config.bypass});
    if let Some(s) = crate::bypass::stats(c) {
        for (k, name) in [
            ("bypassed", "Bypassed"),
            ("normal", "Normal"),
            ("refused", "Refused"),
        ] {
            v[name] = s[k].clone();
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_pads_to_the_widest_cell_plus_three_and_trims_the_last_column() {
        let rows = vec![
            vec!["A".to_string(), "BB".into(), "C".into()],
            vec!["long".to_string(), "".into(), "".into()],
        ];
        assert_eq!(table(&rows), "A      BB   C\nlong\n");
    }

    #[test]
    fn ps_of_nothing_is_the_header_alone_and_quiet_is_empty() {
        assert_eq!(
            ps(&[], false, false),
            "CONTAINER ID   IMAGE   COMMAND   CREATED   STATUS   PORTS   NAMES\n"
        );
        assert_eq!(ps(&[], true, false), "");
    }
}
