//! Every finding of `check`, over hosts built in temporary directories.

use super::*;

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    /// A Debian-like host: ranges for alice, setuid helpers are in the probe, no AppArmor
    /// restriction, the unified hierarchy with full delegation.
    fn new() -> Self {
        let f = Fake {
            dir: tempfile::tempdir().unwrap(),
        };
        f.write("/etc/subuid", "bob:100000:65536\nalice:165536:65536\n");
        f.write("/etc/subgid", "bob:100000:65536\nalice:165536:65536\n");
        f.write("/etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n");
        f.write("/proc/sys/kernel/unprivileged_userns_clone", "1\n");
        f.write("/proc/sys/user/max_user_namespaces", "96365\n");
        f.write("/proc/sys/net/ipv4/ip_unprivileged_port_start", "1024\n");
        f.write(
            "/sys/fs/cgroup/cgroup.controllers",
            "cpuset cpu io memory pids\n",
        );
        f.write(
            "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/cgroup.controllers",
            "cpuset cpu io memory pids\n",
        );
        f
    }
    fn write(&self, abs: &str, text: &str) {
        let p = self.host().path(abs);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    fn remove(&self, abs: &str) {
        std::fs::remove_file(self.host().path(abs)).unwrap();
    }
    fn host(&self) -> Host {
        Host::new(self.dir.path())
    }
}

fn alice() -> User {
    User {
        name: "alice".into(),
        uid: 1000,
        gid: 1000,
    }
}

fn root() -> User {
    User {
        name: "root".into(),
        uid: 0,
        gid: 0,
    }
}

fn setuid(path: &str) -> HelperFile {
    HelperFile {
        path: path.into(),
        mode: 0o4755,
        owner: 0,
        caps: None,
    }
}

fn probe(user: User) -> Probe {
    Probe {
        user,
        exe: "/home/alice/.cargo/bin/nsnet".into(),
        newuidmap: Some(setuid("/usr/bin/newuidmap")),
        newgidmap: Some(setuid("/usr/bin/newgidmap")),
        tun: Tun::Device {
            mode: 0o666,
            open: Ok(()),
        },
        userns: Ok(()),
    }
}

fn find<'a>(all: &'a [Finding], topic: &str) -> &'a Finding {
    all.iter()
        .find(|f| f.topic == topic)
        .unwrap_or_else(|| panic!("no finding {topic:?} in {all:#?}"))
}

#[test]
fn a_ready_host_has_no_problem_and_one_note_for_low_ports() {
    let f = Fake::new();
    let all = run(&f.host(), &probe(alice()));
    let not_ok: Vec<_> = all.iter().filter(|f| f.status != Status::Ok).collect();
    assert_eq!(not_ok.len(), 1, "{all:#?}");
    assert_eq!(not_ok[0].topic, "low ports");
    assert_eq!(
        find(&all, "subordinate uids").summary,
        "165536-231071 (65536) in /etc/subuid"
    );
    assert_eq!(
        find(&all, "newuidmap").summary,
        "/usr/bin/newuidmap is setuid root"
    );
    assert_eq!(
        find(&all, "user namespaces").summary,
        "this user can create them (kernel.unprivileged_userns_clone=1, user.max_user_namespaces=96365)"
    );
    assert_eq!(
        find(&all, "cgroup v2").summary,
        "delegated to user@1000.service: cpuset cpu io memory pids"
    );
}

#[test]
fn missing_subids_are_a_problem_fixed_with_a_free_block() {
    let f = Fake::new();
    f.write("/etc/subuid", "bob:100000:65536\nzed:300000:65536\n");
    f.write("/etc/subgid", "bob:100000:65536\n");
    let all = run(&f.host(), &probe(alice()));
    let uids = find(&all, "subordinate uids");
    assert_eq!(uids.status, Status::Problem);
    // Above every range of both files, on a 65536 boundary.
    assert_eq!(
        uids.fix.as_deref(),
        Some("sudo usermod --add-subuids 393216-458751 --add-subgids 393216-458751 alice")
    );
    assert_eq!(find(&all, "subordinate gids").status, Status::Problem);
}

#[test]
fn subid_files_missing_entirely_start_at_100000_rounded_up() {
    let f = Fake::new();
    f.remove("/etc/subuid");
    f.remove("/etc/subgid");
    let all = run(&f.host(), &probe(alice()));
    assert_eq!(
        find(&all, "subordinate uids").fix.as_deref(),
        Some("sudo usermod --add-subuids 131072-196607 --add-subgids 131072-196607 alice")
    );
}

#[test]
fn a_short_range_is_a_note_and_a_numeric_owner_counts() {
    let f = Fake::new();
    f.write("/etc/subuid", "1000:200000:1000\n");
    let all = run(&f.host(), &probe(alice()));
    let uids = find(&all, "subordinate uids");
    assert_eq!(uids.status, Status::Note);
    assert!(uids.summary.starts_with("200000-200999 (1000)"), "{uids:?}");
}

#[test]
fn a_malformed_subid_file_is_a_problem_naming_the_line() {
    let f = Fake::new();
    f.write("/etc/subgid", "alice:165536\n");
    let all = run(&f.host(), &probe(alice()));
    let gids = find(&all, "subordinate gids");
    assert_eq!(gids.status, Status::Problem);
    assert!(gids.summary.contains("/etc/subgid:1"), "{gids:?}");
    assert_eq!(gids.fix.as_deref(), Some("sudoedit /etc/subgid"));
}

#[test]
fn no_ranges_but_an_nss_subid_service_is_a_note() {
    let f = Fake::new();
    f.write("/etc/subuid", "");
    f.write("/etc/nsswitch.conf", "passwd: files\nsubid: sss\n");
    let all = run(&f.host(), &probe(alice()));
    let uids = find(&all, "subordinate uids");
    assert_eq!(uids.status, Status::Note);
    assert_eq!(uids.fix.as_deref(), Some("getsubids alice"));
}

#[test]
fn root_needs_neither_ranges_nor_helpers() {
    let f = Fake::new();
    let mut p = probe(root());
    p.newuidmap = None;
    let all = run(&f.host(), &p);
    assert_eq!(find(&all, "subordinate ids").status, Status::Ok);
    assert_eq!(find(&all, "newuidmap").status, Status::Ok);
    assert_eq!(
        find(&all, "newgidmap").summary,
        "/usr/bin/newgidmap (not needed as root)"
    );
    assert_eq!(
        find(&all, "cgroup v2").summary,
        "unified hierarchy; root owns every controller"
    );
}

#[test]
fn a_missing_helper_is_fixed_by_the_distributions_package() {
    for (os, cmd) in [
        ("ID=debian\n", "sudo apt-get install uidmap"),
        ("ID=ubuntu\nID_LIKE=debian\n", "sudo apt-get install uidmap"),
        ("ID=fedora\n", "sudo dnf install shadow-utils"),
        (
            "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n",
            "sudo dnf install shadow-utils",
        ),
        ("ID=arch\n", "sudo pacman -S shadow"),
        (
            "ID=\"opensuse-tumbleweed\"\nID_LIKE=\"opensuse suse\"\n",
            "sudo zypper install shadow",
        ),
        ("ID=alpine\n", "sudo apk add shadow-uidmap"),
    ] {
        let f = Fake::new();
        f.write("/etc/os-release", os);
        let mut p = probe(alice());
        p.newgidmap = None;
        let all = run(&f.host(), &p);
        let g = find(&all, "newgidmap");
        assert_eq!(g.status, Status::Problem);
        assert_eq!(g.fix.as_deref(), Some(cmd), "{os}");
    }
}

#[test]
fn a_helper_without_setuid_or_caps_is_a_problem_and_caps_are_enough() {
    let f = Fake::new();
    let mut p = probe(alice());
    p.newuidmap = Some(HelperFile {
        mode: 0o755,
        ..setuid("/usr/bin/newuidmap")
    });
    // vfs_cap_data revision 2: magic | effective flag, permitted cap_setgid (bit 6).
    let mut caps = Vec::new();
    for w in [0x0200_0001u32, 1 << 6, 0, 0, 0] {
        caps.extend_from_slice(&w.to_le_bytes());
    }
    p.newgidmap = Some(HelperFile {
        mode: 0o755,
        caps: Some(caps),
        ..setuid("/usr/bin/newgidmap")
    });
    let all = run(&f.host(), &p);
    let u = find(&all, "newuidmap");
    assert_eq!(u.status, Status::Problem);
    assert_eq!(
        u.fix.as_deref(),
        Some("sudo chown root /usr/bin/newuidmap && sudo chmod u+s /usr/bin/newuidmap")
    );
    let g = find(&all, "newgidmap");
    assert_eq!(g.status, Status::Ok, "{g:?}");
    assert_eq!(
        g.summary,
        "/usr/bin/newgidmap has the file capability cap_setgid"
    );
}

#[test]
fn setuid_owned_by_someone_else_is_not_enough() {
    let f = Fake::new();
    let mut p = probe(alice());
    p.newuidmap = Some(HelperFile {
        owner: 1000,
        ..setuid("/usr/bin/newuidmap")
    });
    assert_eq!(
        find(&run(&f.host(), &p), "newuidmap").status,
        Status::Problem
    );
}

#[test]
fn file_caps_revisions_parse_and_junk_does_not() {
    let words = |ws: &[u32]| ws.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>();
    assert_eq!(
        file_caps_permitted(&words(&[0x0100_0000, 1 << 7, 0])),
        Some(1 << 7)
    );
    assert_eq!(
        file_caps_permitted(&words(&[0x0300_0001, 1 << 7, 0, 1, 0, 0])),
        Some((1 << 7) | (1 << 32))
    );
    assert_eq!(file_caps_permitted(&words(&[0x0900_0000, 1, 0])), None);
    assert_eq!(file_caps_permitted(&[1, 2]), None);
}

#[test]
fn tun_findings() {
    let f = Fake::new();
    let mut p = probe(alice());
    let case = |p: &Probe| find(&run(&f.host(), p), "/dev/net/tun").clone();

    p.tun = Tun::Missing;
    assert_eq!(case(&p).fix.as_deref(), Some("sudo modprobe tun"));
    p.tun = Tun::NotCharDevice;
    assert_eq!(case(&p).status, Status::Problem);
    // 0600 opens for root but not for the unmapped owner inside the namespace.
    p.tun = Tun::Device {
        mode: 0o600,
        open: Err(libc::EACCES),
    };
    let t = case(&p);
    assert_eq!(t.status, Status::Problem);
    assert!(
        t.fix
            .unwrap()
            .starts_with("sudo chmod 0666 /dev/net/tun && ")
    );
    p.tun = Tun::Device {
        mode: 0o660,
        open: Ok(()),
    };
    assert_eq!(
        case(&p).status,
        Status::Problem,
        "group access is not enough"
    );
    p.user = root();
    assert_eq!(
        case(&p).status,
        Status::Ok,
        "root owns the device in its map"
    );
    p.tun = Tun::Device {
        mode: 0o666,
        open: Err(libc::ENODEV),
    };
    assert_eq!(case(&p).summary, "cannot be opened: No such device");
}

#[test]
fn tun_state_sees_missing_and_plain_files() {
    let f = Fake::new();
    assert_eq!(tun_state(&f.host()), Tun::Missing);
    f.write("/dev/net/tun", "");
    assert_eq!(tun_state(&f.host()), Tun::NotCharDevice);
}

#[test]
fn disabled_user_namespaces_are_fixed_by_the_sysctl() {
    let f = Fake::new();
    f.write("/proc/sys/kernel/unprivileged_userns_clone", "0\n");
    let mut p = probe(alice());
    p.userns = Err(libc::EPERM);
    let u = find(&run(&f.host(), &p), "user namespaces").clone();
    assert_eq!(u.status, Status::Problem);
    assert_eq!(
        u.fix.as_deref(),
        Some(
            "sudo sysctl -w kernel.unprivileged_userns_clone=1 && echo kernel.unprivileged_userns_clone=1 | sudo tee /etc/sysctl.d/50-nsnet-userns.conf"
        )
    );

    let f = Fake::new();
    f.remove("/proc/sys/kernel/unprivileged_userns_clone");
    f.write("/proc/sys/user/max_user_namespaces", "0\n");
    let u = find(&run(&f.host(), &p), "user namespaces").clone();
    assert_eq!(
        u.summary,
        "no user namespace may be created (user.max_user_namespaces=0)"
    );
    assert!(u.fix.unwrap().contains("user.max_user_namespaces=28633"));
}

#[test]
fn a_failed_probe_with_fine_sysctls_is_still_a_problem() {
    let f = Fake::new();
    let mut p = probe(alice());
    p.userns = Err(libc::ENOSPC);
    let u = find(&run(&f.host(), &p), "user namespaces").clone();
    assert_eq!(u.status, Status::Problem);
    assert!(u.summary.contains("No space left on device"), "{u:?}");
}

#[test]
fn apparmor_restriction_needs_a_profile_for_the_binary() {
    let f = Fake::new();
    f.write(
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
        "1\n",
    );
    let mut p = probe(alice());
    p.userns = Err(libc::EACCES);
    let all = run(&f.host(), &p);
    let a = find(&all, "AppArmor");
    assert_eq!(a.status, Status::Problem);
    assert_eq!(
        a.fix.as_deref(),
        Some(
            "sudo tee /etc/apparmor.d/home.alice..cargo.bin.nsnet <<'EOF'\nabi <abi/4.0>,\ninclude <tunables/global>\n\"/home/alice/.cargo/bin/nsnet\" flags=(unconfined) {\n  userns,\n  include if exists <local/home.alice..cargo.bin.nsnet>\n}\nEOF\nsudo apparmor_parser -r /etc/apparmor.d/home.alice..cargo.bin.nsnet"
        )
    );
    assert!(find(&all, "user namespaces").summary.contains("AppArmor"));

    // A profile for another binary does not count; one for this binary does.
    f.write(
        "/etc/apparmor.d/usr.bin.rootlesskit",
        "/usr/bin/rootlesskit flags=(unconfined) {\n  userns,\n}\n",
    );
    assert_eq!(
        find(&run(&f.host(), &p), "AppArmor").status,
        Status::Problem
    );
    f.write(
        "/etc/apparmor.d/home.alice..cargo.bin.nsnet",
        "abi <abi/4.0>,\n\"/home/alice/.cargo/bin/nsnet\" flags=(unconfined) {\n  userns,\n}\n",
    );
    let a = find(&run(&f.host(), &p), "AppArmor").clone();
    assert_eq!(a.status, Status::Ok, "{a:?}");
    assert!(
        a.summary
            .contains("/etc/apparmor.d/home.alice..cargo.bin.nsnet grants userns")
    );
}

#[test]
fn apparmor_without_restriction_or_as_root_is_fine() {
    let f = Fake::new();
    let p = probe(alice());
    assert_eq!(
        find(&run(&f.host(), &p), "AppArmor").summary,
        "kernel.apparmor_restrict_unprivileged_userns is absent: no restriction"
    );
    f.write(
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
        "0\n",
    );
    assert_eq!(find(&run(&f.host(), &p), "AppArmor").status, Status::Ok);
    f.write(
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
        "1\n",
    );
    assert_eq!(
        find(&run(&f.host(), &probe(root())), "AppArmor").status,
        Status::Ok
    );
}

#[test]
fn unprivileged_port_start() {
    let f = Fake::new();
    let p = probe(alice());
    let key = "low ports";
    let n = find(&run(&f.host(), &p), key).clone();
    assert_eq!(n.status, Status::Note);
    assert_eq!(
        n.summary,
        "net.ipv4.ip_unprivileged_port_start=1024: ports below 1024 cannot be published rootless"
    );
    assert_eq!(
        n.fix.as_deref(),
        Some(
            "sudo sysctl -w net.ipv4.ip_unprivileged_port_start=0 && echo net.ipv4.ip_unprivileged_port_start=0 | sudo tee /etc/sysctl.d/50-nsnet-ports.conf"
        )
    );
    f.write("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0\n");
    assert_eq!(find(&run(&f.host(), &p), key).status, Status::Ok);
}

#[test]
fn cgroup_findings() {
    let p = probe(alice());
    let f = Fake::new();
    f.write(
        "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/cgroup.controllers",
        "memory pids\n",
    );
    let c = find(&run(&f.host(), &p), "cgroup v2").clone();
    assert_eq!(c.status, Status::Note);
    assert_eq!(
        c.summary,
        "user@1000.service lacks cpu cpuset io: containers cannot be limited on them"
    );
    assert!(
        c.fix
            .unwrap()
            .contains("Delegate=cpu cpuset io memory pids")
    );

    f.remove("/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/cgroup.controllers");
    let c = find(&run(&f.host(), &p), "cgroup v2").clone();
    assert!(
        c.summary.contains("no systemd user manager for uid 1000"),
        "{c:?}"
    );

    f.remove("/sys/fs/cgroup/cgroup.controllers");
    std::fs::create_dir_all(f.host().path("/sys/fs/cgroup/unified")).unwrap();
    let c = find(&run(&f.host(), &p), "cgroup v2").clone();
    assert_eq!(
        c.summary,
        "not the unified hierarchy (hybrid v1/v2): rootless containers get no resource limits"
    );
    assert!(
        c.fix
            .unwrap()
            .contains("systemd.unified_cgroup_hierarchy=1")
    );
}

#[test]
fn helpers_are_found_on_path_under_the_root() {
    let f = Fake::new();
    f.write("/opt/x/newuidmap", "");
    let p = f.host().path("/opt/x/newuidmap");
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let found = find_helper(&f.host(), "newuidmap", "relative:/usr/bin:/opt/x").unwrap();
    assert_eq!(found.path, Path::new("/opt/x/newuidmap"));
    assert_eq!(found.mode, 0o755);
    assert!(find_helper(&f.host(), "newgidmap", "/usr/bin:/opt/x").is_none());
}
