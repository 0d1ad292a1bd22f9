// MinIO's command line and environment, served by s3rver.
'use strict';
const fs = require('fs');
const S3rver = require('s3rver');
const { DUMMY_ACCOUNT } = require('s3rver/lib/models/account');

function fileEnv(name) {
  const file = process.env[`${name}_FILE`];
  if (file) return fs.readFileSync(file.startsWith('/') ? file : `/run/secrets/${file}`, 'utf8').trim();
  if (process.env[name]) return process.env[name];
  console.error(`s3 stand-in: ${name} (or ${name}_FILE) is required`);
  process.exit(2);
}

const [command, directory] = process.argv.slice(2);
if (command !== 'server' || !directory) {
  console.error('usage: server DIR');
  process.exit(2);
}
DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
DUMMY_ACCOUNT.createKeyPair(fileEnv('MINIO_ROOT_USER'), fileEnv('MINIO_ROOT_PASSWORD'));
fs.mkdirSync(directory, { recursive: true });
// Path-style only: with virtual hosts on, the service name `objectstore` would be read as a bucket.
const server = new S3rver({ address: '0.0.0.0', port: 9000, directory, silent: true, vhostBuckets: false });
// MinIO's liveness probe, which the compose health check uses.
server.middleware.unshift(async (ctx, next) => {
  if (ctx.path === '/minio/health/live') ctx.status = 200;
  else await next();
});
server
  .run()
  .then(() => console.log(`s3 stand-in: serving ${directory} on :9000`));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
