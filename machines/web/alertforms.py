from __future__ import annotations

from django import forms

from machines.models.alerts import AlertRule, NotificationChannel


class RuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = [
            "enabled",
            "threshold",
            "for_seconds",
            "window_seconds",
            "selector",
            "channels",
            "notify_resolved",
        ]
        labels = {
            "for_seconds": "Holds for (s)",
            "window_seconds": "Window (s)",
            "notify_resolved": "Notify when resolved",
        }
        widgets = {"channels": forms.CheckboxSelectMultiple}


class ChannelForm(forms.ModelForm):
    class Meta:
        model = NotificationChannel
        fields = ["name", "kind", "target"]
        labels = {"target": "Apprise URL or email addresses"}
        # The target may hold a token: never rendered back into the page.
        widgets = {
            "target": forms.PasswordInput(
                attrs={"placeholder": "ntfy://host/topic, json://host/path, a@b.org, ..."}
            )
        }


class SilenceForm(forms.Form):
    minutes = forms.IntegerField(min_value=0, max_value=7 * 24 * 60)
