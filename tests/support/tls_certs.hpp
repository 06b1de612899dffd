// Certificates for TLS tests, made at test time with OpenSSL: a certificate authority and
// node certificates it signs (P-256 keys, SHA-256, valid for a day), as PEM text.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace quorum::test {

class test_ca {
 public:
  struct issued {
    std::string certificate;
    std::string private_key;
  };

  explicit test_ca(const std::string& name) : key_(new_key()), cert_(X509_new(), X509_free) {
    fill(cert_.get(), name, key_.get(), 1);
    X509_set_issuer_name(cert_.get(), X509_get_subject_name(cert_.get()));
    extend(cert_.get(), cert_.get(), NID_basic_constraints, "critical,CA:TRUE");
    extend(cert_.get(), cert_.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
    check(X509_sign(cert_.get(), key_.get(), EVP_sha256()) > 0, "X509_sign");
  }

  /** The CA's certificate (PEM), which every node trusts. */
  std::string certificate() const { return pem_of(cert_.get()); }

  /** A certificate for `name` signed by this CA, with its private key (PEM). */
  issued issue(const std::string& name) const {
    auto key = new_key();
    std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
    fill(cert.get(), name, key.get(), ++serial_);
    X509_set_issuer_name(cert.get(), X509_get_subject_name(cert_.get()));
    extend(cert.get(), cert_.get(), NID_basic_constraints, "critical,CA:FALSE");
    check(X509_sign(cert.get(), key_.get(), EVP_sha256()) > 0, "X509_sign");
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    check(
        PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "PEM_write_bio_PrivateKey");
    return {pem_of(cert.get()), text_of(bio.get())};
  }

 private:
  using key_ptr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

  static void check(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string("OpenSSL: ") + what + " failed");
  }
  static key_ptr new_key() {
    key_ptr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_PKEY_free);
    check(key != nullptr, "EVP_PKEY_Q_keygen");
    return key;
  }
  static void fill(X509* cert, const std::string& name, EVP_PKEY* key, long serial) {
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* subject = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
  }
  static void extend(X509* cert, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    check(ext != nullptr, "X509V3_EXT_conf_nid");
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }
  static std::string text_of(BIO* bio) {
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<std::size_t>(size));
  }
  static std::string pem_of(X509* cert) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    check(PEM_write_bio_X509(bio.get(), cert) == 1, "PEM_write_bio_X509");
    return text_of(bio.get());
  }

  key_ptr key_;
  std::unique_ptr<X509, decltype(&X509_free)> cert_;
  mutable long serial_ = 1;
};

}  // namespace quorum::test
