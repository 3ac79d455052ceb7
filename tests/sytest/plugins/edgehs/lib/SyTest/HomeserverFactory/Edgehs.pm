# SyTest plugin factory for the "edgehs" Python homeserver.
#
# Selected with `run-tests.pl -I Edgehs` when this plugin's folder is on
# $SYTEST_PLUGINS (tests/sytest/plugins); `make sytest` runs it through tests/sytest/gate.py.
use strict;
use warnings;

require SyTest::Homeserver::Edgehs;

package SyTest::HomeserverFactory::Edgehs;
use base qw( SyTest::HomeserverFactory );

sub _init
{
   my $self = shift;
   $self->{args} = {
      python       => "python3",
      module       => "edgehs",
      socat        => "socat",
      log_level    => "INFO",
      print_output => 0,
   };
   $self->{extra_args} = [];
   $self->SUPER::_init( @_ );
}

sub implementation_name { "edgehs" }

sub get_options
{
   my $self = shift;
   return (
      'python=s'           => \$self->{args}{python},
      'edgehs-module=s'    => \$self->{args}{module},
      'socat=s'            => \$self->{args}{socat},
      'edgehs-log-level=s' => \$self->{args}{log_level},
      'S|server-log+'      => \$self->{args}{print_output},
      'E=s' => sub { push @{ $self->{extra_args} }, $_[1] },
      $self->SUPER::get_options(),
   );
}

sub print_usage
{
   print STDERR <<'USAGE';
       --python PATH          - python interpreter that can import edgehs (default: python3)
       --edgehs-module MOD    - module to run with -m (default: edgehs)
       --socat PATH           - socat binary used as the TLS terminator (default: socat)
       --edgehs-log-level L   - edgehs log_level: DEBUG, INFO, WARNING or ERROR (default: INFO)
   -S, --server-log           - echo the servers' output as well as writing it to
                                server-N/edgehs.log and server-N/tls-proxy.log
   -E ARG                     - extra argument appended to `edgehs run -c FILE`
USAGE
}

sub create_server
{
   my $self = shift;
   return SyTest::Homeserver::Edgehs->new(
      @_, %{ $self->{args} }, extra_args => [ @{ $self->{extra_args} } ],
   );
}

1;
