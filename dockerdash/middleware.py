from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired
from django.http import HttpResponseForbidden
from whitenoise.middleware import WhiteNoiseMiddleware


class LoginRequiredMiddleware(DjangoLoginRequired):
    """Django's login-everywhere middleware, except that an anonymous POST (or any other
    unsafe method, or an htmx request) gets a plain 403 instead of a login redirect that a
    script or htmx would silently follow."""

    def handle_no_permission(self, request, view_func):
        if request.method not in ("GET", "HEAD") or request.headers.get("HX-Request"):
            return HttpResponseForbidden("Log in first.")
        return super().handle_no_permission(request, view_func)


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, able to run in Django's async (ASGI, daphne) chain too.

    WhiteNoise's middleware is sync only: under daphne Django would run every request,
    not only the static ones, through a thread for it, and would warn about its file
    iterator and read the file in a thread anyway. Here the look-up is WhiteNoise's own
    and the file is read off the event loop, as Django's own ASGI static handler does."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None) -> None:
        super().__init__(get_response)
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request):
        if self.autorefresh:
            static_file = await sync_to_async(self.find_file)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is None:
            return await self.get_response(request)
        response = await sync_to_async(self.serve)(static_file, request)
        chunks = response.streaming_content

        async def read_off_the_loop():
            for chunk in await sync_to_async(list)(chunks):
                yield chunk

        response.streaming_content = read_off_the_loop()
        return response
