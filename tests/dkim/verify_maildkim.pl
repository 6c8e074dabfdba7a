#!/usr/bin/perl
# Verifies every DKIM-Signature of a message with Mail::DKIM (Debian libmail-dkim-perl),
# looking keys up on a test DNS server on 127.0.0.1:PORT (Net::DNS, no system resolver).
# Usage: verify_maildkim.pl MESSAGE_FILE DNS_PORT
# Prints one line per signature ("pass|fail a=... d=... s=... detail"); exit 0 iff there
# is at least one signature and all pass, 1 if any fails, 2 on usage or setup errors.
#
# Mail::DKIM 1.20230212 (Debian 12) knows rsa-sha1 and rsa-sha256 only. For
# ed25519-sha256 (RFC 8463) this script plugs in an algorithm class: Mail::DKIM still
# parses the signature, canonicalises and hashes header and body, checks bh= and the
# key record; only the last step, the Ed25519 check of the header hash, is done here,
# with CryptX (libcryptx-perl), which shares no code with OpenSSL or libopendkim.
use strict;
use warnings;

use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Mail::DKIM::PublicKey;
use Mail::DKIM::Signature;
use Mail::DKIM::Algorithm::rsa_sha256;
use Net::DNS::Resolver;
use MIME::Base64;

package KurierTest::Ed25519Sha256;
use base 'Mail::DKIM::Algorithm::rsa_sha256';    # same SHA-256 header and body digests
use MIME::Base64;
use Crypt::PK::Ed25519;

sub verify {
    my $self   = shift;
    my $sig    = decode_base64( $self->signature->data );
    my $public = $self->signature->get_public_key;
    my $key    = Crypt::PK::Ed25519->new;
    $key->import_key_raw( decode_base64( $public->data ), 'public' );
    # RFC 8463 §3: Ed25519 over the SHA-256 digest of the header hash input.
    my $digest = $self->{header_digest}->digest;
    return unless $key->verify_message( $sig, $digest );
    return $self->check_body_hash;
}

# Stands in for the Crypt::OpenSSL::RSA object Mail::DKIM::PublicKey::cork returns;
# the verifier asks it only for its size (its 1024-bit minimum is for RSA).
package KurierTest::Ed25519Key;
sub size { return 32 }

package main;

# Each wrapper handles ed25519 and passes everything else, with all its arguments
# (cork is also the setter convert() calls), to the original. The originals come from
# can(): cork is inherited from Mail::DKIM::Key, so \&Mail::DKIM::PublicKey::cork
# would be a stub that the assignment turns into the wrapper itself.
{
    no warnings qw(redefine once);
    my $algorithm_class = Mail::DKIM::Signature->can('get_algorithm_class');
    *Mail::DKIM::Signature::get_algorithm_class = sub {
        my ( $self, $algorithm ) = @_;
        return 'KurierTest::Ed25519Sha256' if $algorithm eq 'ed25519-sha256';
        return $algorithm_class->(@_);
    };
    my $hash_algorithm = Mail::DKIM::Signature->can('hash_algorithm');
    *Mail::DKIM::Signature::hash_algorithm = sub {
        my $self = shift;
        return 'sha256' if ( $self->algorithm // '' ) eq 'ed25519-sha256';
        return $hash_algorithm->( $self, @_ );
    };
    my $check = Mail::DKIM::PublicKey->can('check');
    *Mail::DKIM::PublicKey::check = sub {
        my $self = shift;
        if ( ( $self->get_tag('k') // '' ) eq 'ed25519' ) {
            my $p = $self->data;
            die "missing p= tag\n" unless defined $p;
            die "revoked\n" if $p eq '';
            die "invalid ed25519 key\n" unless length( decode_base64($p) ) == 32;
            return 1;
        }
        return $check->( $self, @_ );
    };
    my $cork = Mail::DKIM::PublicKey->can('cork');
    *Mail::DKIM::PublicKey::cork = sub {
        my $self = shift;
        return bless {}, 'KurierTest::Ed25519Key' if ( $self->get_tag('k') // '' ) eq 'ed25519';
        return $cork->( $self, @_ );
    };
}

if ( @ARGV != 2 ) {
    print STDERR "usage: verify_maildkim.pl MESSAGE_FILE DNS_PORT\n";
    exit 2;
}
my ( $file, $port ) = @ARGV;

Mail::DKIM::DNS::resolver(
    Net::DNS::Resolver->new(
        nameservers => ['127.0.0.1'],
        port        => $port,
        recurse     => 1,
        retry       => 2,
        udp_timeout => 3,
        tcp_timeout => 3,
    )
);

open( my $fh, '<:raw', $file ) or do { print STDERR "$file: $!\n"; exit 2 };
my $verifier = Mail::DKIM::Verifier->new;
$verifier->load($fh);
close $fh;

my @signatures = $verifier->signatures;
if ( !@signatures ) {
    print "no DKIM-Signature\n";
    exit 1;
}
my $ok = 1;
for my $sig (@signatures) {
    my $result = $sig->result // 'none';
    printf "%s a=%s d=%s s=%s %s\n", $result, $sig->algorithm // '', $sig->domain // '',
      $sig->selector // '', $sig->result_detail // '';
    $ok = 0 unless $result eq 'pass';
}
exit( $ok ? 0 : 1 );
