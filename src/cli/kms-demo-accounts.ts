// The demo's accounts on its in-process KMS endpoint (fixed: nothing is kept, nothing listens
// beyond the demo's own run on loopback): the customer, and a SaaS provider in another account.
import type { KmsCredential } from "../kms/types.js";

export const KMS_DEMO_ACCOUNTS: readonly KmsCredential[] = [
  { accessKeyId: "AKIADEMOCUSTOMER0001", secretAccessKey: "demo-customer-secret-not-a-real-one-0001", accountId: "111122223333", arn: "arn:aws:iam::111122223333:user/alice" },
  { accessKeyId: "AKIADEMOSAASPROVIDER", secretAccessKey: "demo-saas-secret-not-a-real-one-00000001", accountId: "444455556666", arn: "arn:aws:iam::444455556666:user/saas" },
];

export const CO_DEMO = { username: "admin", password: "officer-demo-1" };
