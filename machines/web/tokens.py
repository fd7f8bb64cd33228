"""The "API tokens" page: each user mints, sees and revokes their own tokens."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from machines.models import ApiToken
from machines.services import tokens


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, initial="laptop")
    scope = forms.ChoiceField(choices=ApiToken.Scope.choices)
    expires = forms.CharField(
        max_length=8, initial="90d", help_text="30d, 12h, 2w: a token always expires"
    )
    selector = forms.CharField(
        max_length=200, required=False, help_text="a tag (env=prod): the only machines it sees"
    )


def api_tokens(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    secret = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            _, secret = tokens.mint(
                request.user,
                data["name"],
                data["scope"],
                expires_in=tokens.parse_duration(data["expires"]),
                selector=data["selector"],
            )
        except tokens.TokenError as e:
            form.add_error(None, str(e))
        else:
            form = TokenForm()
    ctx = {
        "form": form,
        "secret": secret,
        "tokens": ApiToken.objects.filter(user=request.user),
        "ceiling": tokens.highest_scope(request.user),
    }
    status = 400 if form.errors else 200
    return render(request, "machines/api_tokens.html", ctx, status=status)


@require_POST
def revoke_api_token(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    tokens.revoke(token)
    messages.success(request, f"Revoked {token}.")
    return redirect("machines:api_tokens")


@require_POST
def revoke_all_api_tokens(request: HttpRequest) -> HttpResponse:
    count = tokens.revoke_all(request.user)
    messages.success(request, f"Revoked {count} token(s).")
    return redirect("machines:api_tokens")
