from __future__ import annotations

from django.urls import path

from . import views

app_name = "machines"
urlpatterns = [
    path("", views.machine_list, name="list"),
    path("machines/new/", views.machine_create, name="create"),
    path("machines/new/driver-fields/", views.driver_fields, name="driver_fields"),
    path("machines/<str:name>/", views.machine_detail, name="detail"),
    path("machines/<str:name>/remove/", views.machine_remove, name="remove"),
    path("machines/<str:name>/<str:action>/", views.machine_action, name="action"),
    path("operations/<int:pk>/cancel/", views.operation_cancel, name="operation_cancel"),
]
