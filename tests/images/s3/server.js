// MinIO's command line and environment, served by s3rver.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const S3rver = require('s3rver');
const { DUMMY_ACCOUNT } = require('s3rver/lib/models/account');
const S3Error = require('s3rver/lib/models/error');

function fileEnv(name) {
  const file = process.env[`${name}_FILE`];
  if (file) return fs.readFileSync(file.startsWith('/') ? file : `/run/secrets/${file}`, 'utf8').trim();
  if (process.env[name]) return process.env[name];
  console.error(`s3 stand-in: ${name} (or ${name}_FILE) is required`);
  process.exit(2);
}

// RFC 3986 encoding, as Signature Version 4 wants it (encodeURIComponent leaves !'()* alone).
function uriEncode(text) {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function canonicalQuery(query, without) {
  return query
    .split('&')
    .filter(Boolean)
    .map((pair) => {
      const at = pair.indexOf('=');
      const [key, value] = at < 0 ? [pair, ''] : [pair.slice(0, at), pair.slice(at + 1)];
      return [uriEncode(decodeURIComponent(key)), uriEncode(decodeURIComponent(value))];
    })
    .filter(([key]) => key !== without)
    .sort(([k1, v1], [k2, v2]) => (k1 < k2 ? -1 : k1 > k2 ? 1 : v1 < v2 ? -1 : v1 > v2 ? 1 : 0))
    .map(([key, value]) => `${key}=${value}`)
    .join('&');
}

const hmac = (key, text) => crypto.createHmac('sha256', key).update(text, 'utf8').digest();

// Signature Version 4, by header or by presigned query, checked against the one key pair, as
// MinIO and S3 check it: s3rver accepts any V4 signature (and unsigned requests) unchecked.
// Version 2 signatures are left to s3rver, which checks those.
function checkSignatureV4(ctx, accessKey, secretKey) {
  const [path, query = ''] = ctx.req.url.split(/\?(.*)/s);
  const params = new URLSearchParams(query);
  let credential, signedHeaders, signature, amzDate, payload, canonical;
  const header = ctx.get('authorization');
  if (header.startsWith('AWS4-HMAC-SHA256 ')) {
    const parts = Object.fromEntries(
      header.slice(17).split(',').map((part) => part.trim().split(/=(.*)/s).slice(0, 2)),
    );
    ({ Credential: credential, SignedHeaders: signedHeaders, Signature: signature } = parts);
    amzDate = ctx.get('x-amz-date');
    payload = ctx.get('x-amz-content-sha256') || 'UNSIGNED-PAYLOAD';
    canonical = canonicalQuery(query);
  } else if (params.get('X-Amz-Algorithm') === 'AWS4-HMAC-SHA256') {
    credential = params.get('X-Amz-Credential');
    signedHeaders = params.get('X-Amz-SignedHeaders');
    signature = params.get('X-Amz-Signature');
    amzDate = params.get('X-Amz-Date');
    payload = 'UNSIGNED-PAYLOAD';
    canonical = canonicalQuery(query, 'X-Amz-Signature');
  } else if (header.startsWith('AWS ') || params.has('Signature')) {
    return; // version 2: s3rver's own check
  } else {
    throw new S3Error('AccessDenied', 'Access Denied.');
  }
  if (!credential || !signedHeaders || !signature || !amzDate) {
    throw new S3Error('AuthorizationHeaderMalformed', 'The authorization header is malformed.');
  }
  const [keyId, ...scope] = credential.split('/');
  if (keyId !== accessKey) {
    throw new S3Error('InvalidAccessKeyId', 'The Access Key Id you provided does not exist in our records.');
  }
  const names = signedHeaders.split(';');
  const headers = names.map((name) => `${name}:${String(ctx.req.headers[name] ?? '').trim().replace(/\s+/g, ' ')}\n`);
  const request = [ctx.method, path, canonical, headers.join(''), signedHeaders, payload].join('\n');
  const toSign = [
    'AWS4-HMAC-SHA256',
    amzDate,
    scope.join('/'),
    crypto.createHash('sha256').update(request, 'utf8').digest('hex'),
  ].join('\n');
  const key = scope.reduce((k, part) => hmac(k, part), `AWS4${secretKey}`);
  const expected = Buffer.from(hmac(key, toSign).toString('hex'));
  const given = Buffer.from(signature);
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) {
    throw new S3Error(
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
    );
  }
}

const [command, directory] = process.argv.slice(2);
if (command !== 'server' || !directory) {
  console.error('usage: server DIR');
  process.exit(2);
}
const accessKey = fileEnv('MINIO_ROOT_USER');
const secretKey = fileEnv('MINIO_ROOT_PASSWORD');
DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
DUMMY_ACCOUNT.createKeyPair(accessKey, secretKey);
fs.mkdirSync(directory, { recursive: true });
// Path-style only: with virtual hosts on, the service name `objectstore` would be read as a bucket.
const server = new S3rver({ address: '0.0.0.0', port: 9000, directory, silent: true, vhostBuckets: false });
// MinIO's liveness probe, which the compose health check uses, is the only open request.
server.middleware.unshift(async (ctx, next) => {
  if (ctx.path === '/minio/health/live') ctx.status = 200;
  else {
    checkSignatureV4(ctx, accessKey, secretKey);
    await next();
  }
});
server
  .run()
  .then(() => console.log(`s3 stand-in: serving ${directory} on :9000`));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
