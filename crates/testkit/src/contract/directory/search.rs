//! `search` (username, email, first and last name) and `name` (the display name), with
//! pattern metacharacters matched literally.

use tessera_domain::model::UserListQuery;

use super::{assert_filter, assert_lists, assert_name, assert_search, everyone, filtered, term};
use crate::contract::tiers::new_tier;
use crate::contract::{at, create, named, new_managed_user, with_tier, Stores, UserBuilder};

pub async fn search_covers_username_email_first_and_last_name(s: Stores) {
    let john = create(
        &s,
        named("jsmith", 1)
            .email("j@corp.io")
            .first_name("John")
            .last_name("Smith"),
    )
    .await;
    let ann = create(
        &s,
        named("ann", 2)
            .email("annie@SMITHS.example")
            .first_name("Ann")
            .last_name("Lee"),
    )
    .await;
    let zed = create(&s, named("zed", 3).email("zed@x.io").first_name("Smithy")).await;
    let bob = create(&s, named("bob", 4).email(None).last_name("Jones")).await;
    let managed = create(
        &s,
        new_managed_user(bob.id)
            .first_name("Smitty")
            .created_at(at(5)),
    )
    .await;

    assert_search(&s, "SMITH", &[&john, &ann, &zed]).await;
    assert_search(&s, "  smith  ", &[&john, &ann, &zed]).await;
    assert_search(&s, "jones", &[&bob]).await;
    assert_search(&s, "CORP", &[&john]).await;
    assert_search(&s, "ann", &[&ann]).await;
    assert_search(&s, "mitt", &[&managed]).await;
    assert_search(&s, "o", &[&john, &zed, &bob]).await;
    assert_search(&s, "nomatch", &[]).await;
    // Each field on its own: first and last names are not searched together.
    assert_search(&s, "john smith", &[]).await;

    let q = UserListQuery {
        search: term("smith"),
        ..filtered("username=@j")
    };
    assert_lists(&s, q, &[&john], "search and filter").await;
}

pub async fn search_filters_and_name_match_metacharacters_literally(s: Stores) {
    let percent = create(
        &s,
        named("pct", 1)
            .email("50%off@example.com")
            .first_name("50% off"),
    )
    .await;
    let no_percent = create(&s, named("nopct", 2).first_name("50 off")).await;
    let underscore = create(&s, named("a_b", 3)).await;
    let no_underscore = create(&s, named("axb", 4)).await;
    let backslash = create(&s, named("back\\slash", 5).email("bs@example.com")).await;
    let no_backslash = create(&s, named("backslash", 6)).await;
    let injection = create(&s, named("inj", 7).last_name("'; drop table users; --")).await;
    let no_injection = create(&s, named("noinj", 8).last_name("drop table users")).await;
    let by_underscore = create(&s, named("child1", 9).created_by(underscore.id)).await;
    let by_no_underscore = create(&s, named("child2", 10).created_by(no_underscore.id)).await;
    let all = [
        &percent,
        &no_percent,
        &underscore,
        &no_underscore,
        &backslash,
        &no_backslash,
        &injection,
        &no_injection,
        &by_underscore,
        &by_no_underscore,
    ];

    assert_search(&s, "%", &[&percent]).await;
    assert_search(&s, "50%", &[&percent]).await;
    assert_search(&s, "50%off", &[&percent]).await;
    assert_search(&s, "0% o", &[&percent]).await;
    assert_search(&s, "_", &[&underscore]).await;
    assert_search(&s, "a_b", &[&underscore]).await;
    assert_search(&s, "\\", &[&backslash]).await;
    assert_search(&s, "k\\s", &[&backslash]).await;
    assert_search(&s, "\\%", &[]).await;
    assert_search(&s, "'; drop table users; --", &[&injection]).await;
    assert_search(&s, "'", &[&injection]).await;
    assert_search(&s, "--", &[&injection]).await;
    assert_search(&s, "drop table", &[&injection, &no_injection]).await;
    // Nothing was dropped.
    assert_lists(&s, everyone(), &all, "everyone").await;

    assert_filter(&s, "username=@_", &[&underscore]).await;
    assert_filter(&s, "username=@a_b", &[&underscore]).await;
    assert_filter(&s, "username=@\\", &[&backslash]).await;
    assert_filter(&s, "username=@k\\s", &[&backslash]).await;
    assert_filter(&s, "username=@%", &[]).await;
    assert_filter(&s, "email=@%", &[&percent]).await;
    assert_filter(&s, "email=@50%o", &[&percent]).await;
    assert_filter(&s, "username==a_b", &[&underscore]).await;
    assert_filter(&s, "username==a%", &[]).await;
    assert_filter(&s, "username==back\\slash", &[&backslash]).await;
    assert_filter(&s, "username=@'", &[]).await;
    assert_filter(&s, "createdBy=@a_b", &[&by_underscore]).await;
    assert_filter(&s, "createdBy=@_", &[&by_underscore]).await;
    assert_filter(&s, "createdBy==a_b", &[&by_underscore]).await;

    let tier_under = new_tier(&s, "x_y").await;
    let tier_plain = new_tier(&s, "xzy").await;
    let tier_pct = new_tier(&s, "50%").await;
    s.users
        .update(percent.id, with_tier(Some(tier_under.id)), at(20))
        .await
        .unwrap();
    s.users
        .update(no_percent.id, with_tier(Some(tier_plain.id)), at(20))
        .await
        .unwrap();
    s.users
        .update(underscore.id, with_tier(Some(tier_pct.id)), at(20))
        .await
        .unwrap();
    assert_filter(&s, "tier=@x_y", &[&percent]).await;
    assert_filter(&s, "tier=@_", &[&percent]).await;
    assert_filter(&s, "tier=@%", &[&underscore]).await;
    assert_filter(&s, "tier==x_y", &[&percent]).await;

    assert_name(&s, "%", &[&percent]).await;
    assert_name(&s, "_", &[&underscore]).await;
    assert_name(&s, "\\", &[&backslash]).await;
    assert_name(&s, "'; drop", &[&injection]).await;
}

pub async fn name_matches_the_display_name(s: Stores) {
    let jane = create(&s, named("jd", 1).first_name("Jane").last_name("Doe")).await;
    let prince = create(&s, named("tafkap", 2).first_name("Prince")).await;
    let doe = create(&s, named("johnny", 3).last_name("Doe")).await;
    let plain = create(&s, named("plainuser", 4)).await;
    let mail_only = create(
        &s,
        named("unused", 5)
            .username(None)
            .email("mail.only@example.org"),
    )
    .await;
    let nobody = create(
        &s,
        named("unused2", 6)
            .username(None)
            .email(None)
            .password_hash(None),
    )
    .await;
    assert_eq!(jane.display_name(), "Jane Doe");
    assert_eq!(mail_only.display_name(), "mail.only@example.org");
    assert_eq!(nobody.display_name(), nobody.id.to_string());

    assert_name(&s, "e d", &[&jane]).await;
    assert_name(&s, "JANE DOE", &[&jane]).await;
    assert_name(&s, "doe", &[&jane, &doe]).await;
    // The username is not part of a display name made from first and last names.
    assert_name(&s, "jd", &[]).await;
    assert_name(&s, "tafkap", &[]).await;
    assert_name(&s, "johnny", &[]).await;
    assert_name(&s, "prince", &[&prince]).await;
    assert_name(&s, "PlainUser", &[&plain]).await;
    assert_name(&s, "mail.only", &[&mail_only]).await;
    assert_name(&s, "@example.org", &[&mail_only]).await;
    // Emails of users with a username or names are not their display name.
    assert_name(&s, "@example.com", &[]).await;
    let id = nobody.id.to_string();
    assert_name(&s, &id[id.len() - 12..], &[&nobody]).await;
}
