"""Drivers as a caller names them: a kind or a configured name, a provider account made from
settings given once (then reused), and a driver's options checked by its own form."""

from __future__ import annotations

from django import forms

from machines.drivers import DriverError, driver_class, registered
from machines.models import Driver
from machines.services import rights
from machines.services.errors import InvalidInput


def form_errors(form: forms.Form) -> str:
    """A form's errors on one line: `field: message`, the form-wide ones as they are."""
    return "; ".join(
        " ".join(v) if k == forms.forms.NON_FIELD_ERRORS else f"{k}: {' '.join(v)}"
        for k, v in form.errors.items()
    )


def driver_for(user, name: str, settings: dict) -> tuple[Driver, bool]:
    """A kind's driver with the settings given (made once, then reused with the same
    settings); else a configured driver by name, or the kind's default. True if made now."""
    kinds = registered()
    if name in kinds:
        given = driver_class(name).complete_cli_settings(settings)
        if given:
            return _driver_with(user, name, given)
    driver = Driver.objects.filter(name=name).first() or Driver.objects.filter(kind=name).first()
    if driver is not None:
        return driver, False
    if name not in kinds:
        known = ", ".join(sorted({*kinds, *Driver.objects.values_list("name", flat=True)}))
        raise InvalidInput(f"Driver {name!r} not found (known: {known})")
    if driver_class(name).has_accounts:
        flags = [f.flag for f in driver_class(name).cli_flags() if f.form == "settings"]
        raise InvalidInput(
            f"No {name} account yet: give {flags[0]} (or add one on the Providers page)"
        )
    rights.require(user, "machines.add_driver", "add drivers")
    return Driver.objects.create(name=_free_name(name), kind=name), True


def _driver_with(user, kind: str, given: dict) -> tuple[Driver, bool]:
    cls = driver_class(kind)
    form = cls.settings_form(data=given)
    if not form.is_valid():
        raise InvalidInput(f"Invalid settings for the {kind} driver: {form_errors(form)}")
    settings, secrets = cls.split_settings(form.cleaned_data)
    for driver in Driver.objects.filter(kind=kind):
        if driver.settings == settings and driver.secrets == secrets:
            return driver, False
    return add_account(user, _free_name(kind), kind, form.cleaned_data), True


def _free_name(base: str) -> str:
    if not Driver.objects.filter(name=base).exists():
        return base
    n = 2
    while Driver.objects.filter(name=f"{base}-{n}").exists():
        n += 1
    return f"{base}-{n}"


def options_with_defaults(kind: str, given: dict) -> dict:
    """A driver's options as given, over its form's initial values (the defaults
    docker-machine's flags had): the CLI's flags and the API's JSON alike."""
    fields = driver_class(kind).options_form.base_fields
    data = {
        name: f.initial
        for name, f in fields.items()
        if f.initial is not None and not isinstance(f, forms.BooleanField)
    }
    return data | given


def add_account(user, name: str, kind: str, settings: dict) -> Driver:
    """A driver row (a provider account) with the settings its form cleaned; the secrets
    among them stored encrypted, the row checked by the model."""
    rights.require(user, "machines.add_driver", "add provider accounts")
    account = Driver(name=name, kind=kind)
    account.settings, account.secrets = driver_class(kind).split_settings(settings)
    account.full_clean()
    account.save()
    return account


def test_account(account: Driver) -> tuple[str, bool]:
    """What the provider says of the account's token: a sentence, and whether it worked."""
    try:
        return account.get_driver().test_connection(), True
    except DriverError as e:
        return str(e), False


def remove_account(user, account: Driver) -> None:
    """Forget an account no machine uses any more."""
    rights.require(user, "machines.delete_driver", "remove provider accounts")
    if count := account.machines.count():
        raise InvalidInput(f"{account.name} still has {count} machine(s): remove them first.")
    account.delete()


def clean_options(driver: Driver, data: dict) -> dict:
    """The driver's options, checked by its options form (a provider account asks its API
    for the choices); InvalidInput says what is wrong, in one line."""
    try:
        form = driver.get_driver().bind_options_form(data=data)
        if form.is_valid():
            return form.cleaned_data
        errors = form_errors(form)
    except DriverError as e:
        errors = str(e)
    raise InvalidInput(f"Invalid options for the {driver.kind} driver: {errors}")
