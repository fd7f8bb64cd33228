#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
/* A tiny HTTP server: answers every request with "<MESSAGE> from <hostname>". */
int main(void) {
  const char *msg = getenv("MESSAGE");
  const char *port = getenv("PORT");
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port ? atoi(port) : 8080)};
  if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 64)) { perror("listen"); return 1; }
  printf("listening\n"); fflush(stdout);
  for (;;) {
    int c = accept(s, 0, 0);
    if (c < 0) continue;
    char buf[2048]; read(c, buf, sizeof buf);
    char body[512];
    int n = snprintf(body, sizeof body, "%s from %s\n", msg ? msg : "hello", host);
    char head[256];
    int h = snprintf(head, sizeof head, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", n);
    write(c, head, h); write(c, body, n); close(c);
    printf("served\n"); fflush(stdout);
  }
}
