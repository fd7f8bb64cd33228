"""`inspect --format`: Go's text/template as docker-machine ran it (on the host's JSON)."""

from __future__ import annotations

import pytest

from machines.lib.gotemplate import TemplateError, render

HOST = {
    "Name": "web<1>",
    "DriverName": "generic",
    "Driver": {"IPAddress": "192.0.2.10", "SSHPort": 22, "Memory": 1000000, "Key": None},
    "HostOptions": {"EngineOptions": {"Labels": ["env=lab", "team=web"]}},
}


@pytest.mark.parametrize(
    ("template", "printed"),
    [
        ("{{.DriverName}}", "generic"),
        ("{{json .DriverName}}", '"generic"'),
        ("{{.Driver.IPAddress}}:{{.Driver.SSHPort}}", "192.0.2.10:22"),
        # Go's fmt prints JSON numbers as float64, and null as <no value>.
        ("{{.Driver.Memory}} {{.Driver.Key}}", "1e+06 <no value>"),
        ("{{json .Name}}", '"web\\u003c1\\u003e"'),
        (
            "{{.Driver | json}}",
            '{"IPAddress":"192.0.2.10","Key":null,"Memory":1000000,"SSHPort":22}',
        ),
        ("{{.HostOptions.EngineOptions.Labels}}", "[env=lab team=web]"),
        ("{{range .HostOptions.EngineOptions.Labels}}<{{.}}>{{end}}", "<env=lab><team=web>"),
        ('{{if eq .DriverName "none"}}url{{else if .Driver.IPAddress}}ip{{end}}', "ip"),
        ("{{with .Driver}}{{.SSHPort}} {{$.DriverName}}{{end}}", "22 generic"),
        ('{{printf "%s@%v" .DriverName .Driver.SSHPort}}', "generic@22"),
        ('{{len .HostOptions.EngineOptions.Labels}} {{index .Driver "SSHPort"}}', "2 22"),
        ("a {{- /* a comment */ -}} b", "ab"),
        ("{{(json .Driver.SSHPort) | len}}", "2"),
    ],
)
def test_templates_print_as_go_does(template, printed):
    assert render(template, HOST) == printed


def test_prettyjson_is_go_indented_json():
    assert render("{{prettyjson .Driver}}", HOST) == (
        '{\n    "IPAddress": "192.0.2.10",\n    "Key": null,\n    "Memory": 1000000,\n'
        '    "SSHPort": 22\n}'
    )


@pytest.mark.parametrize(
    ("template", "error"),
    [
        (
            "{{.Driver.Nope}}",
            'template: :1:2: executing "" at <.Driver.Nope>: map has no entry for key "Nope"',
        ),
        (
            "{{.Name.X}}",
            'template: :1:2: executing "" at <.Name.X>: can\'t evaluate field X in type string',
        ),
        ("{{nope .Name}}", 'template parsing error: template: :1: function "nope" not defined'),
        ("{{.Name", "template parsing error: template: :1: unclosed action"),
        ("{{if .Name}}x", "template parsing error: template: :1: unexpected EOF in if"),
        (
            "{{json}}",
            'template: :1:2: executing "" at <json>: wrong number of args for json: want 1 got 0',
        ),
    ],
)
def test_errors_are_one_line_in_gos_words(template, error):
    with pytest.raises(TemplateError) as e:
        render(template, HOST)
    assert str(e.value) == error
