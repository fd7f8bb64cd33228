// A real OpenID Provider for the tests: the certified `oidc-provider` package, one client
// (PKCE required, client_secret_post), users and their groups read from a JSON file at each
// login (a test edits it to move a user between groups). Its development login form takes
// the user's name (any password): the dashboard's side of the protocol is what is tested.
import fs from 'node:fs';
import Provider from 'oidc-provider';

const { OIDC_PORT, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT, OIDC_USERS } = process.env;
const issuer = `http://127.0.0.1:${OIDC_PORT}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: OIDC_CLIENT_ID,
    client_secret: OIDC_CLIENT_SECRET,
    redirect_uris: [OIDC_REDIRECT],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: { openid: ['sub'], email: ['email'], profile: ['preferred_username'], groups: ['groups'] },
  pkce: { required: () => true, methods: ['S256'] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const users = JSON.parse(fs.readFileSync(OIDC_USERS, 'utf8'));
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, email: `${id}@example.test`, groups: (users[id] || {}).groups || [] };
      },
    };
  },
});
provider.listen(Number(OIDC_PORT), '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
