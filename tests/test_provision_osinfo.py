"""From os-release to an OS profile, and the daemon configuration written for each init system.

These are the parts no test host here can exercise (Fedora, Alpine, OpenRC, SysV: no registry,
no other mirror); the Debian/systemd path runs for real in test_provision.py.
"""

from __future__ import annotations

import shlex

import pytest

from machines.models import Driver, Machine
from machines.provision import daemon, engine
from machines.provision import facts as facts_mod
from machines.provision.osinfo import ProvisionError, UnknownOS, detect, parse_os_release

OS_RELEASES = {
    "debian": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
    'VERSION_ID="12"\nID=debian\n',
    "ubuntu": 'NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n',
    "raspbian": 'NAME="Raspbian GNU/Linux"\nID=raspbian\nID_LIKE=debian\n',
    "mint": 'NAME="Linux Mint"\nID=linuxmint\nID_LIKE="ubuntu debian"\n',
    "fedora": 'NAME="Fedora Linux"\nVERSION_ID=40\nID=fedora\n',
    "rocky": 'NAME="Rocky Linux"\nVERSION_ID="9.4"\nID="rocky"\nID_LIKE="rhel centos fedora"\n',
    "alma": 'NAME="AlmaLinux"\nID="almalinux"\nID_LIKE="rhel centos fedora"\n',
    "centos": 'NAME="CentOS Stream"\nID="centos"\nID_LIKE="rhel fedora"\n',
    "amazon": 'NAME="Amazon Linux"\nVERSION_ID="2023"\nID="amzn"\nID_LIKE="fedora"\n',
    "alpine": 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.0\n',
}


@pytest.mark.parametrize(
    ("os_name", "family", "managers", "packages"),
    [
        ("debian", "debian", ("apt",), ("docker.io",)),
        ("ubuntu", "ubuntu", ("apt",), ("docker.io",)),
        ("raspbian", "debian", ("apt",), ("docker.io",)),
        ("mint", "ubuntu", ("apt",), ("docker.io",)),
        ("fedora", "fedora", ("dnf", "yum"), ("moby-engine",)),
        ("rocky", "rhel", ("dnf", "yum"), None),
        ("alma", "rhel", ("dnf", "yum"), None),
        ("centos", "rhel", ("dnf", "yum"), None),
        ("amazon", "amzn", ("dnf", "yum"), ("docker",)),
        ("alpine", "alpine", ("apk",), ("docker",)),
    ],
)
def test_os_release_id_then_id_like_picks_the_profile(os_name, family, managers, packages):
    info = detect(OS_RELEASES[os_name])
    assert info.profile.family == family
    assert info.profile.managers == managers
    assert info.profile.docker_packages == packages


def test_an_unknown_os_is_named_in_the_error():
    text = 'NAME="openSUSE Leap"\nVERSION="15.5"\nID="opensuse-leap"\nID_LIKE="suse opensuse"\n'
    text += 'PRETTY_NAME="openSUSE Leap 15.5"\n'
    with pytest.raises(UnknownOS) as e:
        detect(text)
    assert str(e.value).startswith(
        'Unsupported operating system "openSUSE Leap 15.5" (ID=opensuse-leap, '
        'ID_LIKE="suse opensuse" in /etc/os-release). dockerdash provisions Debian, Ubuntu,'
    )
    with pytest.raises(UnknownOS, match="/etc/os-release is missing or empty"):
        detect("")


def test_os_release_values_are_unquoted_as_a_shell_would():
    values = parse_os_release('# comment\nNAME="A \\"quoted\\" name"\nID=x\nBAD LINE\nV=\'1 2\'\n')
    assert values == {"NAME": 'A "quoted" name', "ID": "x", "V": "1 2"}


def _facts(os_name: str, init: str, **kw) -> facts_mod.HostFacts:
    return facts_mod.HostFacts(
        os=detect(OS_RELEASES[os_name]),
        init=init,
        managers=kw.pop("managers", {"apt"}),
        dockerd=kw.pop("dockerd", "/usr/bin/dockerd"),
        docker_version="Docker version 25.0.5",
        hostname="h",
        swarm=kw.pop("swarm", False),
        **kw,
    )


def _machine(**fields) -> Machine:
    return Machine(name="web-1", driver=Driver(name="generic", kind="generic"), **fields)


def test_red_hat_family_without_an_install_url_says_what_to_do():
    facts = _facts("rocky", "systemd", managers={"dnf"}, dockerd="")
    with pytest.raises(ProvisionError) as e:
        engine.install_script(facts)
    assert "Rocky Linux" in str(e.value)
    assert "no Docker Engine package (only Podman)" in str(e.value)
    assert "--engine-install-url" in str(e.value)


def test_an_install_url_is_fetched_quoted():
    facts = _facts("rocky", "systemd", managers={"dnf"}, dockerd="")
    url = "https://example.com/install.sh?a=1&b='x'"
    script = engine.install_script(facts, url)
    assert f"curl -fsSL {shlex.quote(url)} -o" in script
    assert 'sh "$script"' in script


def test_distribution_packages_per_family():
    assert 'pm_install "$@"' in engine.install_script(_facts("debian", "systemd"))
    assert "set -- docker.io" in engine.install_script(_facts("debian", "systemd"))
    fedora = engine.install_script(_facts("fedora", "systemd", managers={"dnf"}))
    assert "set -- moby-engine" in fedora and "dnf -y -q install" in fedora
    alpine = engine.install_script(_facts("alpine", "openrc", managers={"apk"}))
    assert "set -- docker" in alpine and "apk add" in alpine
    with pytest.raises(ProvisionError, match="none of apk is installed"):
        engine.install_script(_facts("alpine", "openrc", managers=set()))


def test_systemd_dropin_resets_execstart_and_escapes_for_systemd():
    machine = _machine(
        engine_port=2376,
        engine_labels=['note=has "quotes" $HOME 100%', "env=prod"],
        engine_env=["HTTP_PROXY=http://proxy:3128", "NO_PROXY=a b"],
        engine_opts=["--log-level=warn"],
    )
    facts = _facts(
        "debian",
        "systemd",
        dockerd="/usr/sbin/dockerd",
        units={"docker.socket": "loaded", "docker.service": "loaded"},
        vendor_exec="/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock",
    )
    text = daemon.render_dropin(machine, facts)
    lines = text.splitlines()
    assert lines[1] == "[Service]"
    assert 'Environment="HTTP_PROXY=http://proxy:3128"' in lines
    assert 'Environment="NO_PROXY=a b"' in lines
    start = lines.index("ExecStart=")
    assert lines[start + 1] == (
        "ExecStart=/usr/sbin/dockerd -H fd:// -H tcp://0.0.0.0:2376 --tlsverify "
        "--tlscacert=/etc/docker/dockerdash/ca.pem --tlscert=/etc/docker/dockerdash/server.pem "
        "--tlskey=/etc/docker/dockerdash/server-key.pem "
        "--containerd=/run/containerd/containerd.sock --label=provider=generic "
        '"--label=note=has \\"quotes\\" $$HOME 100%%" --label=env=prod --live-restore '
        "--log-level=warn"
    )


def test_without_socket_activation_the_daemon_listens_on_the_unix_socket_itself():
    facts = _facts("fedora", "systemd", units={"docker.service": "loaded"}, vendor_exec="")
    args = daemon.daemon_args(_machine(), facts)
    assert args[:2] == ["-H", "unix:///var/run/docker.sock"]


def test_a_swarm_node_or_an_explicit_flag_gets_no_live_restore():
    assert "--live-restore" not in daemon.daemon_args(
        _machine(), _facts("debian", "systemd", swarm=True)
    )
    args = daemon.daemon_args(
        _machine(engine_opts=["--live-restore=false"]), _facts("debian", "systemd")
    )
    assert args.count("--live-restore=false") == 1 and "--live-restore" not in args


def test_openrc_and_sysv_get_docker_opts_and_refuse_what_they_cannot_carry():
    machine = _machine(engine_labels=["env=prod"], engine_env=["HTTP_PROXY=http://p:3128"])
    openrc = daemon.render_opts_file(machine, _facts("alpine", "openrc", managers={"apk"}))
    assert 'DOCKER_OPTS="-H unix:///var/run/docker.sock -H tcp://0.0.0.0:2376 --tlsverify' in openrc
    assert "--label=env=prod" in openrc
    assert "export HTTP_PROXY=http://p:3128" in openrc
    assert "DOCKER_LOGFILE=/var/log/docker.log" in openrc
    sysv = daemon.daemon_files(machine, _facts("debian", "sysv"))
    assert sysv[0].path == "/etc/default/docker"
    with pytest.raises(ProvisionError, match="no spaces or quotes"):
        daemon.render_opts_file(_machine(engine_labels=["a=b c"]), _facts("debian", "sysv"))


def test_files_travel_in_here_documents_with_their_modes():
    files = [
        daemon.RemoteFile("/etc/docker/dockerdash/server-key.pem", "SECRET\n", 0o600),
        daemon.RemoteFile("/etc/default/docker", "DOCKER_OPTS=x", 0o644),
    ]
    script = daemon.write_files_script(files)
    assert "umask 077" in script
    assert "chmod 600 /etc/docker/dockerdash/server-key.pem.dockerdash-partial" in script
    assert "mv -f /etc/docker/dockerdash/server-key.pem.dockerdash-partial" in script
    # The distribution's own file is kept once, for `rm --purge`.
    assert "cp -p /etc/default/docker /etc/default/docker.dockerdash-orig" in script
    assert "DOCKER_OPTS=x\n" in script
