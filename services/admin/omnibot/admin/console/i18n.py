"""English and Russian for the console: the language of a request, and the Russian catalog.

The English text is the key (the English labels are a contract: tests and people's habits rely on
them), so an English page needs no catalog and a missing Russian entry shows the English text.
The language comes from the `lang` cookie (set by the switch in the page header), else from the
browser's Accept-Language, else English.
"""

from __future__ import annotations

from typing import Literal

Language = Literal["en", "ru"]
LANGUAGES: tuple[Language, ...] = ("en", "ru")
COOKIE = "omnibot_lang"


def choose_language(cookie: str | None, accept_language: str | None) -> Language:
    if cookie in LANGUAGES:
        return cookie
    best: tuple[float, Language] = (0.0, "en")
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        base = tag.strip().lower().split("-")[0]
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if base in LANGUAGES and q > best[0]:
            best = (q, base)
    return best[1]


def translate(language: Language, text: str) -> str:
    if language == "ru":
        return RU.get(text, text)
    return text


RU: dict[str, str] = {
    # sign-in and frame
    "omnibot console": "консоль omnibot",
    "Sign in": "Войти",
    "Sign out": "Выйти",
    "E-mail": "E-mail",
    "Password": "Пароль",
    "Wrong e-mail or password.": "Неверный e-mail или пароль.",
    "Too many attempts. Try again in {n} seconds.": "Слишком много попыток. Повторите через {n} с.",
    "Signed in as": "Вы вошли как",
    "admin": "администратор",
    "viewer": "наблюдатель",
    "Overview": "Обзор",
    "Channels": "Каналы",
    "Agents": "Агенты",
    "Chats": "Чаты",
    "Dead letters": "Недоставленные",
    "Audit log": "Журнал действий",
    "Language": "Язык",
    "Main navigation": "Главное меню",
    "The request was refused: the form has expired. Reload the page and try again.": (
        "Запрос отклонён: форма устарела. Обновите страницу и повторите."
    ),
    "Your role can only read: this change is not allowed.": (
        "Ваша роль только для чтения: это изменение запрещено."
    ),
    "Page not found.": "Страница не найдена.",
    "Something went wrong. The admin service's log has the details.": (
        "Что-то пошло не так. Подробности в журнале сервиса admin."
    ),
    "MongoDB is unavailable; try again.": "MongoDB недоступна; попробуйте ещё раз.",
    "Back": "Назад",
    "yes": "да",
    "no": "нет",
    "never": "никогда",
    "Previous": "Назад",
    "Next": "Далее",
    "{first}–{last} of {total}": "{first}–{last} из {total}",
    "Copy": "Копировать",
    "Copied": "Скопировано",
    "Reads only": "Только чтение",
    # overview
    "Active channels": "Активные каналы",
    "Chats today": "Чатов сегодня",
    "Transfers today": "Переводов сегодня",
    "Replies delivered today": "Ответов доставлено сегодня",
    "Dead letters waiting": "Ждут повторной отправки",
    "Last errors": "Последние ошибки",
    "unknown: RabbitMQ is unavailable": "неизвестно: RabbitMQ недоступен",
    "No errors. Chats that fail show up here.": "Ошибок нет. Здесь появятся чаты с ошибками.",
    "Nothing here yet: create a channel to connect Omnidesk.": (
        "Здесь пока пусто: создайте канал, чтобы подключить Omnidesk."
    ),
    "since midnight UTC": "с полуночи UTC",
    "chat": "чат",
    "channel": "канал",
    # channels
    "Create channel": "Создать канал",
    "Title": "Название",
    "Domain": "Домен",
    "Bot e-mail": "E-mail бота",
    "Agent": "Агент",
    "Active": "Активен",
    "active": "активен",
    "inactive": "не активен",
    "Webhook URL": "URL вебхука",
    "shown to admins only": "видно только администраторам",
    "No channels yet. Create one to connect your Omnidesk account.": (
        "Каналов пока нет. Создайте канал, чтобы подключить аккаунт Omnidesk."
    ),
    "Choose the channel type": "Выберите тип канала",
    "Omnidesk": "Omnidesk",
    "The helpdesk: the bot works as an operator in your Omnidesk account.": (
        "Хелпдеск: бот работает оператором в вашем аккаунте Omnidesk."
    ),
    "New Omnidesk channel": "Новый канал Omnidesk",
    "New channel": "Новый канал",
    "Omnidesk domain": "Домен Omnidesk",
    "Omnidesk API key": "API-ключ Omnidesk",
    "Omnidesk user e-mail": "E-mail сотрудника Omnidesk",
    "Chatbot webhook URL": "URL вебхука чат-бота",
    "Copy this webhook": "Скопировать вебхук",
    "Default agent": "Агент по умолчанию",
    "Bot label": "Метка бота",
    "CREATE": "СОЗДАТЬ",
    "CREATE & ACTIVATE": "СОЗДАТЬ И АКТИВИРОВАТЬ",
    "CANCEL": "ОТМЕНА",
    "for example https://test-ru.omnidesk.ru": "например https://test-ru.omnidesk.ru",
    "the bot's staff member": "сотрудник, от имени которого работает бот",
    "Paste it into the Omnidesk rules now: it works once the channel is saved and active.": (
        "Вставьте его в правила Omnidesk сейчас: он заработает, когда канал будет сохранён и активен."
    ),
    "The id or the title of the label that marks chats on the bot. Empty: the label titled "
    "«На боте» is looked up.": (
        "Идентификатор или название метки, которой отмечены чаты на боте. Пусто: ищется метка «На боте»."
    ),
    "No agents yet: import one first.": "Агентов пока нет: сначала импортируйте агента.",
    "Choose an agent": "Выберите агента",
    "Activation checks": "Проверки активации",
    "passed": "пройдена",
    "failed": "не пройдена",
    "The channel is active.": "Канал активен.",
    "The channel is saved but not active: fix what failed, then activate it.": (
        "Канал сохранён, но не активен: исправьте ошибки и активируйте его."
    ),
    "The channel is saved (not active).": "Канал сохранён (не активен).",
    "The agent is published": "Агент опубликован",
    "Omnidesk answers with these credentials": "Omnidesk отвечает с этими данными",
    "The webhook is registered": "Вебхук зарегистрирован",
    "No other active channel uses this domain and e-mail": (
        "Нет другого активного канала с тем же доменом и e-mail"
    ),
    "Channel": "Канал",
    "Edit": "Изменить",
    "Save": "Сохранить",
    "Saved.": "Сохранено.",
    "Leave empty to keep the current key.": "Оставьте пустым, чтобы сохранить текущий ключ.",
    "the current key is kept": "текущий ключ сохранён",
    "LLM provider": "Языковая модель",
    "Optional: the chat-completions API this channel's llm slots ask. An empty field takes the "
    "server's setting (LLM_BASE_URL, LLM_MODEL, LLM_API_KEY).": (
        "Необязательно: API chat completions, к которому обращаются слоты llm этого канала. Пустое "
        "поле берёт настройку сервера (LLM_BASE_URL, LLM_MODEL, LLM_API_KEY)."
    ),
    "LLM base URL": "Базовый URL модели",
    "LLM model": "Модель",
    "LLM API key": "API-ключ модели",
    "A key is set. Leave empty to keep the current key.": (
        "Ключ задан. Оставьте пустым, чтобы сохранить текущий ключ."
    ),
    "Remove the key": "Удалить ключ",
    "No key of its own. With its own base URL the channel sends none; without, the server's.": (
        "Своего ключа нет. Со своим базовым URL канал не отправляет ключ; без него — ключ сервера."
    ),
    "the server's base URL": "базовый URL сервера",
    "model": "модель",
    "the server's": "сервера",
    "key set": "ключ задан",
    "no key of its own": "своего ключа нет",
    "the server's (LLM_BASE_URL, LLM_MODEL)": "сервера (LLM_BASE_URL, LLM_MODEL)",
    "Activate": "Активировать",
    "Deactivate": "Деактивировать",
    "The channel is deactivated: its webhook accepts nothing.": (
        "Канал деактивирован: его вебхук ничего не принимает."
    ),
    "Rotate webhook secret": "Сменить секрет вебхука",
    "The webhook URL is new: paste it into both Omnidesk rules; the old one no longer works.": (
        "URL вебхука новый: вставьте его в оба правила Omnidesk; старый больше не работает."
    ),
    "Delete": "Удалить",
    "Delete channel": "Удалить канал",
    "Delete the channel {title}? Its webhook stops working; its chats stay for the record.": (
        "Удалить канал {title}? Его вебхук перестанет работать; чаты останутся."
    ),
    "Yes, delete": "Да, удалить",
    "The channel is deleted.": "Канал удалён.",
    "Omnidesk setup": "Настройка Omnidesk",
    "Rule body": "Тело запроса",
    "Copy rule body": "Скопировать тело запроса",
    "Bot label id": "Идентификатор метки бота",
    "not set: found by the title «На боте» when the channel is activated": (
        "не задан: ищется по названию «На боте» при активации канала"
    ),
    "Created": "Создан",
    "Updated": "Изменён",
    "API key": "API-ключ",
    "Chats of this channel": "Чаты этого канала",
    # setup steps
    "In Omnidesk, create a role for the bot with full access and access to every channel.": (
        "В Omnidesk создайте роль для бота с полным уровнем доступа и доступом ко всем каналам."
    ),
    "Create the staff member {email} with that role, and switch it on.": (
        "Создайте сотрудника {email} с этой ролью и включите его."
    ),
    "Create a group for the bot.": "Создайте группу (отдел) для бота.",
    "Create a rule for incoming cases with these actions:": (
        "Создайте правило для входящих обращений с действиями:"
    ),
    "Assign to the staff member {email}.": "Назначить ответственным — сотрудника {email}.",
    "Run a webhook by POST to this URL:": "Выполнить вебхук методом POST на этот URL:",
    "A custom request in JSON format, with this body:": "Кастомный запрос в формате JSON с телом:",
    "Condition: Status equals open (in «All of these»).": (
        "Условие: Статус — равен — открытое («Все заданные»)."
    ),
    "End the chat and set the status to waiting.": "Завершить чат и выставить статус — в ожидании.",
    "Add the label «На боте».": "Добавить метку «На боте».",
    "Last action: ignore the other rules. Save the rule and move it to the top of the list.": (
        "Последнее действие: игнорировать остальные правила. "
        "Сохраните правило и переместите его в начало списка."
    ),
    "Create the same rule for changed cases.": "Создайте такое же правило для изменённых обращений.",
    "Transfer to an operator: a rule for changed cases that, when the label «На боте» is removed, "
    "assigns nobody, then any available staff member.": (
        "Перевод на оператора: правило для изменённых обращений, которое при удалении метки «На боте» "
        "сбрасывает ответственного и назначает любого доступного сотрудника."
    ),
    "The bot label's id (in the address bar of the label's page in Omnidesk):": (
        "Идентификатор метки бота (в адресной строке страницы метки в Omnidesk):"
    ),
    "In Omnidesk's settings, API: add an API key, and enter it in this channel.": (
        "В настройках Omnidesk, раздел API: добавьте API-ключ и укажите его в этом канале."
    ),
    # agents
    "Import agent": "Импортировать агента",
    "Agent file": "Файл агента",
    "Publish": "Опубликовать",
    "Import": "Импортировать",
    "Export": "Экспортировать",
    "Name": "Имя",
    "Latest version": "Последняя версия",
    "Published version": "Опубликованная версия",
    "none": "нет",
    "Versions": "Версии",
    "Version": "Версия",
    "Imported": "Импортирована",
    "Slots": "Слоты",
    "published": "опубликована",
    "No agents yet. Import an agent file (omnibot/agent@1) to start.": (
        "Агентов пока нет. Импортируйте файл агента (omnibot/agent@1), чтобы начать."
    ),
    "The file was not imported:": "Файл не импортирован:",
    "the file as a whole": "файл целиком",
    "slot": "слот",
    "Choose a file.": "Выберите файл.",
    "Imported {name} version {version}.": "Импортирован {name}, версия {version}.",
    "Imported and published {name} version {version}.": (
        "Импортирован и опубликован {name}, версия {version}."
    ),
    "Warnings": "Предупреждения",
    "Published version {version}.": "Опубликована версия {version}.",
    "Flow diagram": "Схема сценария",
    "Flow diagram of {name} version {version}": "Схема сценария {name}, версия {version}",
    # chats
    "Owner": "Владелец",
    "bot": "бот",
    "operator": "оператор",
    "any": "любой",
    "Updated within": "Изменён за",
    "any time": "всё время",
    "the last hour": "последний час",
    "the last day": "последние сутки",
    "the last week": "последнюю неделю",
    "Filter": "Показать",
    "Chat": "Чат",
    "Current slot": "Текущий слот",
    "Last error": "Последняя ошибка",
    "No chats match. Chats appear when customers write to the channel.": (
        "Подходящих чатов нет. Чаты появляются, когда клиенты пишут в канал."
    ),
    "Create a channel first: chats belong to channels.": "Сначала создайте канал: чаты принадлежат каналам.",
    "Transcript": "Переписка",
    "customer": "клиент",
    "system": "система",
    "Variables": "Переменные",
    "No variables.": "Переменных нет.",
    "No messages yet.": "Сообщений пока нет.",
    "Transfer to operator": "Перевести на оператора",
    "Return to bot": "Вернуть боту",
    "The chat is the operator's: the bot stays quiet.": "Чат у оператора: бот молчит.",
    "The bot answers this chat.": "Чат ведёт бот.",
    "no session: the next message starts the agent": "нет сессии: следующее сообщение запустит агента",
    "Updates while open.": "Обновляется, пока страница открыта.",
    # dead letters
    "Stage": "Этап",
    "Reason": "Причина",
    "Attempts": "Попытки",
    "Age": "Возраст",
    "Kind": "Тип",
    "Replay": "Повторить",
    "Replay selected": "Повторить выбранные",
    "Replay all": "Повторить все",
    "Select": "Выбрать",
    "No dead letters: every message went through.": "Недоставленных нет: все сообщения прошли.",
    "Re-driven: {n}.": "Отправлено повторно: {n}.",
    "Select at least one dead letter.": "Выберите хотя бы одно сообщение.",
    "inbound": "входящие",
    "outbound": "исходящие",
    "Dead letters cannot be read: RabbitMQ is unavailable.": (
        "Недоставленные нельзя прочитать: RabbitMQ недоступен."
    ),
    # audit
    "When": "Когда",
    "Who": "Кто",
    "What": "Что",
    "Target": "Объект",
    "Detail": "Подробности",
    "No changes recorded yet.": "Изменений пока нет.",
    # units
    "{n} s": "{n} с",
    "{n} min": "{n} мин",
    "{n} h": "{n} ч",
    "{n} d": "{n} дн",
}
