//! The `pesto` personality: the client of pasta's forwarding-table socket (`pesto(1)`,
//! passt 2026_07_16), speaking `nsnet_api::pesto` to nsnet's `pasta -c SOCKET` (or a real
//! pasta of the same protocol version).
//!
//! `pesto [-A|--add] [-D|--delete] [-C|--clear PIF] [-t|-u|-T|-U SPEC]... [-s] PATH`: reads
//! the tables, applies the options in order (without `-A`/`-D` the first `-t/-u` (`-T/-U`)
//! replaces the inbound (outbound) table), and sends them back; with no option it prints
//! them. Callers: Podman (`pesto --add -t 0.0.0.0/HP -t [::]/HP SOCKET`, `--delete` alike),
//! RootlessKit v3's pesto port driver (`pesto -A|-D --tcp-ports=IP/PPORT:CPORT SOCKET`,
//! `pesto --version` as a probe). Errors are pesto's messages, exit status 1.

use nsnet_api::pesto::{Client, Parser};

const USAGE: &str = "Usage: pesto [OPTION]... PATH

  -A, --add		Add following specifiers to forwards
  -D, --delete		Delete following specifiers instead
  -C, --clear PIF	Clear forwarding table for given PIF
  -t, --tcp-ports SPEC	TCP inbound port forwarding
  -u, --udp-ports SPEC	UDP inbound port forwarding
  -T, --tcp-ns SPEC	TCP port forwarding to init namespace
  -U, --udp-ns SPEC	UDP port forwarding to init namespace
  -s, --show		Show configuration before and after
  -d, --debug		Print debugging messages
  -h, --help		Display this help message and exit
  --version		Show version and exit
";

#[derive(Debug, PartialEq)]
enum Op {
    Add,
    Delete,
    Clear(String),
    Spec(char, String),
}

struct Cmd {
    ops: Vec<Op>,
    show: bool,
    path: String,
}

enum Parsed {
    Run(Cmd),
    Help,
    Version,
}

fn parse(argv0: &str, args: &[String]) -> Result<Parsed, String> {
    let mut ops = Vec::new();
    let mut show = false;
    let mut pos = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        let (opt, inline): (char, Option<String>) = if let Some(l) = a.strip_prefix("--") {
            let (n, v) = match l.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (l, None),
            };
            let c = match n {
                "add" => 'A',
                "delete" => 'D',
                "clear" => 'C',
                "tcp-ports" => 't',
                "udp-ports" => 'u',
                "tcp-ns" => 'T',
                "udp-ns" => 'U',
                "show" => 's',
                "debug" => 'd',
                "help" => 'h',
                "version" => return Ok(Parsed::Version),
                _ => return Err(format!("{argv0}: unrecognized option '--{n}'")),
            };
            (c, v)
        } else if a.len() > 1 && a.starts_with('-') {
            let c = a[1..].chars().next().expect("one char");
            if !"ADCtuTUsdh".contains(c) {
                return Err(format!("{argv0}: invalid option -- '{c}'"));
            }
            (c, (a.len() > 2).then(|| a[1 + c.len_utf8()..].to_string()))
        } else {
            pos.push(a.clone());
            continue;
        };
        let mut value = || -> Result<String, String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            let v = args
                .get(i)
                .cloned()
                .ok_or_else(|| format!("{argv0}: option requires an argument -- '{opt}'"))?;
            i += 1;
            Ok(v)
        };
        match opt {
            'A' => ops.push(Op::Add),
            'D' => ops.push(Op::Delete),
            'C' => ops.push(Op::Clear(value()?)),
            't' | 'u' | 'T' | 'U' => ops.push(Op::Spec(opt, value()?)),
            's' => show = true,
            'd' => {}
            'h' => return Ok(Parsed::Help),
            _ => unreachable!("checked above"),
        }
    }
    match pos.as_slice() {
        [p] => Ok(Parsed::Run(Cmd {
            ops,
            show,
            path: p.clone(),
        })),
        _ => Err(USAGE.trim_end().to_string()),
    }
}

pub fn main() -> i32 {
    let mut args = std::env::args();
    let argv0 = args.next().unwrap_or_else(|| "pesto".into());
    let args: Vec<String> = args.collect();
    match parse(&argv0, &args) {
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            0
        }
        Ok(Parsed::Version) => {
            println!("pesto {}", super::pasta::VERSION);
            0
        }
        Ok(Parsed::Run(c)) => match run(&c) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("{e}");
                1
            }
        },
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

fn show(title: &str, path: &str, c: &Client) {
    println!("{title} ({path})");
    for t in &c.tables {
        println!("  {}", t.name);
        for r in &t.table.rules {
            println!("    {r}");
        }
    }
}

fn run(cmd: &Cmd) -> Result<(), String> {
    let mut c = Client::connect(std::path::Path::new(&cmd.path)).map_err(|e| e.to_string())?;
    if cmd.ops.is_empty() {
        show("passt/pasta configuration", &cmd.path, &c);
        c.close();
        return Ok(());
    }
    if cmd.show {
        show("Previous configuration", &cmd.path, &c);
    }
    let parser = Parser::new();
    let idx = |c: &Client, name: &str| c.tables.iter().position(|t| t.name == name);
    let (inbound, outbound) = (idx(&c, "HOST"), idx(&c, "SPLICE"));
    let (mut mode_add, mut mode_del) = (false, false);
    let (mut in_cleared, mut out_cleared) = (false, false);
    for op in &cmd.ops {
        match op {
            Op::Add => (mode_add, mode_del) = (true, false),
            Op::Delete => (mode_add, mode_del) = (false, true),
            Op::Clear(pif) => {
                let i = idx(&c, pif).ok_or_else(|| format!("Unsupported pif name {pif}"))?;
                c.tables[i].table.rules.clear();
                match pif.as_str() {
                    "HOST" => in_cleared = true,
                    "SPLICE" => out_cleared = true,
                    _ => {}
                }
            }
            Op::Spec(opt, spec) => {
                let inbound_opt = *opt == 't' || *opt == 'u';
                let (i, cleared, side) = if inbound_opt {
                    (inbound, &mut in_cleared, "inbound")
                } else {
                    (outbound, &mut out_cleared, "outbound")
                };
                let i = i.ok_or_else(|| format!("Can't use -{opt}, no {side} interface"))?;
                if !mode_add && !mode_del && !*cleared {
                    c.tables[i].table.rules.clear();
                    *cleared = true;
                }
                parser
                    .parse(*opt, mode_del, spec, &mut c.tables[i].table)
                    .map_err(|e| e.0)?;
            }
        }
    }
    if cmd.show {
        show("Updated configuration", &cmd.path, &c);
    }
    c.send().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn the_callers_command_lines() {
        let Ok(Parsed::Run(c)) = parse(
            "pesto",
            &args("--add -t 0.0.0.0/8080 -t [::]/8080 /run/p.sock"),
        ) else {
            panic!()
        };
        assert_eq!(
            c.ops,
            [
                Op::Add,
                Op::Spec('t', "0.0.0.0/8080".into()),
                Op::Spec('t', "[::]/8080".into())
            ]
        );
        assert_eq!(c.path, "/run/p.sock");
        let Ok(Parsed::Run(c)) = parse("pesto", &args("-D --tcp-ports=127.0.0.1/8080:80 /s"))
        else {
            panic!()
        };
        assert_eq!(
            c.ops,
            [Op::Delete, Op::Spec('t', "127.0.0.1/8080:80".into())]
        );
        assert!(matches!(
            parse("pesto", &args("--version")),
            Ok(Parsed::Version)
        ));
        assert_eq!(
            parse("pesto", &args("--bogus /s")).err().unwrap(),
            "pesto: unrecognized option '--bogus'"
        );
        assert!(
            parse("pesto", &args("-A"))
                .err()
                .unwrap()
                .starts_with("Usage: pesto")
        );
    }
}
