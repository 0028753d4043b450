//! `inspect --format`: the subset of Go's text/template that scripts use on `docker inspect`
//! output — field paths (`{{.State.Pid}}`, `{{.NetworkSettings.IPAddress}}`), `{{json .X}}`,
//! and literal text around them. Values print as Go prints them: strings raw, numbers and
//! booleans plainly, maps and lists as `map[…]`/`[…]` (use `json` for JSON).

use serde_json::Value;

use crate::Error;

fn lookup<'a>(root: &'a Value, path: &str) -> Result<&'a Value, Error> {
    let path = path.trim();
    if path == "." {
        return Ok(root);
    }
    let rest = path.strip_prefix('.').ok_or_else(|| {
        Error::Invalid(format!(
            "template: field path {path:?} must start with '.', e.g. {{{{.State.Pid}}}}"
        ))
    })?;
    let mut v = root;
    for key in rest.split('.') {
        v = v.get(key).ok_or_else(|| {
            Error::Invalid(format!(
                "template: {path}: no field {key:?} (see `nsnet container inspect` for the fields)"
            ))
        })?;
    }
    Ok(v)
}

fn go_text(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_text).collect::<Vec<_>>().join(" ")),
        Value::Object(o) => format!(
            "map[{}]",
            o.iter()
                .map(|(k, v)| format!("{k}:{}", go_text(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// Renders `template` against `root`.
pub fn render(template: &str, root: &Value) -> Result<String, Error> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| Error::Invalid(format!("template: unclosed action in {template:?}")))?;
        let action = after[..end]
            .trim()
            .trim_start_matches('-')
            .trim_end_matches('-');
        let action = action.trim();
        if let Some(arg) = action.strip_prefix("json ") {
            out.push_str(&serde_json::to_string(lookup(root, arg)?).expect("serializes"));
        } else {
            out.push_str(&go_text(lookup(root, action)?));
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_json_and_text() {
        let v = serde_json::json!({"State": {"Pid": 42, "Running": true},
            "NetworkSettings": {"IPAddress": "10.4.0.2", "Ports": {"80/tcp": [{"HostPort": "8080"}]}}});
        assert_eq!(render("{{.State.Pid}}", &v).unwrap(), "42");
        assert_eq!(
            render(
                "ip={{ .NetworkSettings.IPAddress }} up={{.State.Running}}",
                &v
            )
            .unwrap(),
            "ip=10.4.0.2 up=true"
        );
        assert_eq!(
            render("{{json .NetworkSettings.Ports}}", &v).unwrap(),
            r#"{"80/tcp":[{"HostPort":"8080"}]}"#
        );
        assert!(render("{{.State.Nope}}", &v).is_err());
        assert!(render("{{.State.Pid", &v).is_err());
        assert!(render("{{State}}", &v).is_err());
    }
}
