"""Loading PEM private keys fast, and still checked.

OpenSSL's own check of an RSA key tests its primes for primality: about 50 ms a key here,
which made importing a docker-machine store of a thousand machines (two RSA keys each) take
minutes. The arithmetic that makes a key work is checked instead (n = p·q, e·d ≡ 1 modulo
λ(n), and the CRT values derived from them), in microseconds: a key that passes decrypts
and signs what its public half encrypts and verifies. Django-free.
"""

from __future__ import annotations

from math import lcm

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def load_pem_private_key(data: bytes):
    """cryptography's load_pem_private_key (same errors), RSA keys checked as above."""
    key = serialization.load_pem_private_key(
        data, password=None, unsafe_skip_rsa_key_validation=True
    )
    if isinstance(key, rsa.RSAPrivateKey) and not _consistent(key.private_numbers()):
        raise ValueError("The RSA key is not consistent (its numbers do not make a key).")
    return key


def _consistent(numbers: rsa.RSAPrivateNumbers) -> bool:
    p, q, d = numbers.p, numbers.q, numbers.d
    n, e = numbers.public_numbers.n, numbers.public_numbers.e
    if p < 3 or q < 3 or p * q != n or e < 3:
        return False
    return (
        (e * d) % lcm(p - 1, q - 1) == 1
        and numbers.dmp1 == d % (p - 1)
        and numbers.dmq1 == d % (q - 1)
        and (numbers.iqmp * q) % p == 1
    )
