"""Forms of the cluster and stack pages (validation proper is on the models and services)."""

from __future__ import annotations

from django import forms

from machines.models import ClusterNode, Machine, Stack


def parse_env(text: str) -> dict[str, str]:
    """KEY=value lines (blank lines and # comments skipped) as a dict."""
    env = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise forms.ValidationError(f"Line {n} is not KEY=value.")
        env[key.strip()] = value
    return env


class ClusterForm(forms.Form):
    name = forms.CharField(max_length=41)
    machines = forms.ModelMultipleChoiceField(
        queryset=Machine.objects.filter(cluster_node__isnull=True).order_by("name"),
        to_field_name="name",
        required=False,
        help_text="The first picked is the first manager.",
    )
    tag = forms.CharField(required=False, help_text="Or every machine with this tag (key=value).")
    managers = forms.TypedChoiceField(choices=[(1, "1"), (3, "3")], coerce=int, initial=1)

    def clean(self):
        data = super().clean()
        if not data.get("machines") and not data.get("tag"):
            raise forms.ValidationError("Pick machines or give a tag.")
        return data


class NodeForm(forms.Form):
    machine = forms.ModelChoiceField(
        queryset=Machine.objects.filter(cluster_node__isnull=True).order_by("name"),
        to_field_name="name",
    )
    role = forms.ChoiceField(choices=ClusterNode.Role.choices, initial=ClusterNode.Role.WORKER)


class StackForm(forms.ModelForm):
    env_text = forms.CharField(
        label="Variables", required=False, widget=forms.Textarea(attrs={"rows": 4})
    )
    secret_text = forms.CharField(
        label="Secret variables",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="KEY=value lines, stored encrypted and never shown again; empty keeps them.",
    )

    deploy_key_text = forms.CharField(
        label="Deploy key",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="For an ssh:// repository: a private key with read access; stored encrypted, "
        "never shown again; empty keeps it.",
    )

    class Meta:
        model = Stack
        fields = [
            "name",
            "compose",
            "git_url",
            "git_branch",
            "git_path",
            "update_parallelism",
            "update_delay",
            "update_failure_action",
        ]
        widgets = {"compose": forms.Textarea(attrs={"rows": 16, "class": "mono"})}
        labels = {
            "update_parallelism": "Update: tasks at a time",
            "update_delay": "Update: seconds between batches",
            "update_failure_action": "Update: when a task fails",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["env_text"].initial = "\n".join(
                f"{k}={v}" for k, v in sorted(self.instance.env.items())
            )
            self.fields["name"].disabled = True

    def clean_env_text(self):
        return parse_env(self.cleaned_data["env_text"])

    def clean_secret_text(self):
        return parse_env(self.cleaned_data["secret_text"])
